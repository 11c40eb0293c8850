"""The chaos suite: the operator under crashes, restarts, faults and out-of-band edits.

``python -m reliability --minutes 30 --seed 1`` (``make reliability``) builds the e2e testbed
(a real kube-apiserver + etcd, the emulator stack, the operator as a process under the chart's
RBAC), runs the deterministic crash matrix (``crashing``), then the seeded random run and soak
(``storming``), while ``probing`` samples the invariants continuously and ``invariants`` (pure)
turns samples into figures. The figures go to ``reliability/results/latest.json``; what each
one means is in ``docs/reliability.md``. A fast subset runs in ``make e2e``
(``e2e/test_reliability.py``).

Modules: ``fleet`` (the objects under test), ``invariants`` (pure ledger of violations),
``probing`` (samples emulators, statuses and the operator process), ``crashing`` (kill at each
journal step boundary), ``storming`` (random kills, restarts, faults, edits), ``figures``
(results and slopes).
"""
