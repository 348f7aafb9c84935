"""The spec fuzzer at length: tests/integration/test_schemathesis.py's spec-aware strategies (specs near
their edges) against POST /sweeps/plan and POST /sweeps of the in-process app, many more
examples than CI runs. Each answer must be a 2xx or a 4xx within 30 s, and a 4xx stores
nothing; the table counts answers by status, with the slowest request.

    python benchmarks/spec_fuzz.py --examples 2000
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import print_table  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from hypothesis import HealthCheck, given, seed, settings

    from tests.integration import test_schemathesis as t

    statuses: collections.Counter = collections.Counter()
    slowest = [0.0]
    failures: list[str] = []

    def client_post(route, **kw):
        t0 = time.monotonic()
        r = t._CLIENT.post(route, **kw)
        slowest[0] = max(slowest[0], time.monotonic() - t0)
        statuses[(route, r.status_code)] += 1
        return r

    class Counting:
        post = staticmethod(client_post)

    @seed(args.seed)
    @given(t.SPECS)
    @settings(max_examples=args.examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(spec):
        try:
            t.fuzz_once(spec, client=Counting)
        except AssertionError as e:
            failures.append(str(e)[:300])
            raise

    t0 = time.monotonic()
    with contextlib.suppress(AssertionError):  # counted in `failures`, printed below
        run()
    took = time.monotonic() - t0
    rows = [[route, status, n] for (route, status), n in sorted(statuses.items())]
    print_table(["route", "status", "answers"], rows)
    requests = sum(statuses.values())
    print(f"{args.examples} examples, {requests} requests in {took:.0f} s; slowest request {slowest[0]:.2f} s")
    print(f"5xx: {sum(n for (_, s), n in statuses.items() if s >= 500)}; failures: {len(failures)}")
    for f in failures[:5]:
        print("  " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
