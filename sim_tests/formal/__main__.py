"""``make formal``: run every proof of :data:`~.proofs.PROOFS` (``-j N`` at once, 2 by
default) in ``build/formal`` (or ``-o DIR``; counterexamples stay there) and print each
verdict, depth and time, then ``N passed, N failed``; the exit status is 1 if any verdict is
not the one expected."""

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor

from .proofs import PROOFS
from .sby import prove, tools_missing


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m sim_tests.formal")
    parser.add_argument("-o", "--output", default="build/formal", help="work directory")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="proofs at once (2)")
    args = parser.parse_args(argv)
    missing = tools_missing()
    if missing:
        print(f"formal: missing tools: {', '.join(missing)} (make setup installs them)",
              file=sys.stderr)
        return 1
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda t: (t, prove(t.harness(), t.name, t.depth, args.output)),
                                PROOFS))
    bad = 0
    for task, proof in results:
        ok = proof.status == task.expect and (task.expect == "PASS" or proof.trace)
        bad += not ok
        print(f"{task.name:<26} depth {task.depth:>2}  {proof.status:<7} "
              f"{proof.seconds:6.1f} s  {'ok' if ok else 'UNEXPECTED, expected ' + task.expect}"
              + (f"  counterexample {proof.trace}" if proof.trace else ""))
    print(f"{len(results) - bad} passed, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
