"""The e2e testbed: a real control plane on loopback, kubectl helpers and the CLI behind
``make testbed`` / ``make testbed-down`` (``python -m e2e.testbed up|down``).

Import modules, not names: ``from e2e.testbed import controlplane`` then
``controlplane.ControlPlane(workdir)``. ``ControlPlane`` is re-exported here for convenience.
"""

from e2e.testbed.controlplane import ControlPlane

__all__ = ["ControlPlane"]
