"""rotator's benchmarks: speed, spread and gentleness targets, measured rather than unit-tested.

``python -m bench`` (``make bench``) runs every benchmark, prints a table, writes a JSON file
under ``bench/results/`` and exits non-zero when a target that was measured is missed. Each
benchmark states its targets next to its figures (:mod:`bench.results`); docs/benchmarks.md
explains why each target is what it is.

- :mod:`bench.spreading`  the schedule's jitter: how many of N secrets created in the same
  second fall due in the busiest minute;
- :mod:`bench.deciding`   throughput of the pure decision (trigger chain + rotation.next_action);
- :mod:`bench.scaling`    the operator process on a real kube-apiserver with the emulators: a
  burst of N ServicePrincipalSecrets, and a run with Graph throttling (429 + Retry-After).
"""
