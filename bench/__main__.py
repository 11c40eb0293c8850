"""``python -m bench``: run the benchmarks, print a table, write bench/results/, exit 1 on a miss.

Options: ``--quick`` (smaller sizes, shorter idle window: a smoke run, not the figures for
docs), ``--only NAME`` (repeatable: jitter, decisions, scale, throttle), ``--n N`` (objects in
the scale run), ``--tenants``, ``--idle-window``, ``--no-write`` (do not write a results file),
``--keep`` (keep bench/.work/ with the operator logs), ``--address-by clientId|objectId``
and ``--no-verify`` (how the secrets of the operator runs are written).

Exit status: 0 when every target that was measured is met, 1 when one is missed or a
benchmark crashed. A benchmark that could not run (say, the control plane is not built) is
reported NOT RUN with the reason and does not by itself fail the run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from bench import deciding, results, scaling, spreading

NAMES = ("jitter", "decisions", "scale", "throttle")


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", action="append", choices=NAMES, help="run only these")
    parser.add_argument("--n", type=int, default=None, help="objects in the scale run (500)")
    parser.add_argument("--throttle-n", type=int, default=None, help="objects, throttle run")
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--idle-window", type=float, default=None, metavar="SECONDS")
    parser.add_argument(
        "--address-by",
        choices=("clientId", "objectId"),
        default="clientId",
        help="how the secrets name their application (spec.application)",
    )
    parser.add_argument(
        "--no-verify", dest="verify", action="store_false", help="spec.verify.enabled: false"
    )
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    parser.add_argument("--keep", action="store_true", help="keep bench/.work/ (logs)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    only = set(args.only or ())
    quick = args.quick
    outcomes: list[results.Outcome] = []

    def report(outcome: results.Outcome) -> None:
        outcomes.append(outcome)
        print(f"[bench] {outcome.name}: {outcome.state} ({outcome.seconds:.1f}s)", flush=True)

    if not only or "jitter" in only:
        report(spreading.run([10_000] if quick else [10_000, 100_000]))
    if not only or "decisions" in only:
        report(deciding.run(10_000 if quick else 50_000, 3 if quick else 7))
    options = scaling.Options(
        count=args.n or (50 if quick else 500),
        throttle_count=args.throttle_n or (30 if quick else 100),
        tenants=args.tenants,
        idle_window=args.idle_window or (10.0 if quick else 60.0),
        keep=args.keep,
        address_by=args.address_by,
        verify=args.verify,
    )
    began = time.perf_counter()
    for outcome in scaling.run(options, only):
        report(outcome)
    if any(o.name in ("scale", "throttle") for o in outcomes):
        print(f"[bench] operator benchmarks took {time.perf_counter() - began:.0f}s", flush=True)

    print()
    print(results.table(outcomes))
    if not args.no_write:
        path = results.write(outcomes, ["python -m bench", *(argv or sys.argv[1:])])
        print(f"\nresults: {path}")
    missed = [o for o in outcomes if o.state in ("FAIL", "ERROR")]
    not_run = [o for o in outcomes if o.state == "NOT RUN"]
    if not_run:
        print(f"NOT RUN: {', '.join(o.name for o in not_run)} (see the reasons above)")
    if missed:
        print(f"targets missed: {', '.join(o.name for o in missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
