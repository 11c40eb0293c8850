"""End-to-end tests: a real kube-apiserver and etcd, the emulators, and the operator process.

The testbed package (``e2e.testbed``) starts the parts; ``e2e/conftest.py`` exposes them as
pytest fixtures; ``python -m e2e.testbed up|down`` runs them by hand.
"""
