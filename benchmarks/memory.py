"""Peak memory of the sweep driver and of each trial process, for 1 and for N concurrent
trials on the full data set. The data set (about 180 MB of uint8 arrays) goes through
Ray's object store once and every trial maps it read-only, so a trial's private memory
(USS) must not grow by the data set's size, and N trials must not cost N copies.

    python benchmarks/memory.py --concurrency 1 4

RSS counts the shared object-store pages a process maps; USS counts only its own pages.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import cache_dir, default_data, fit_sweep, print_table, say_data  # noqa: E402
from cifar_sweeps.training.data import load_splits  # noqa: E402

MB = 1024 * 1024


class Sampler:
    """Polls the driver and every Ray trial process (title `ray::...train...`) every 0.2 s."""

    def __init__(self):
        self.driver = {"rss": 0, "uss": 0}
        self.trials: dict[int, dict[str, int]] = {}
        self._stop = threading.Event()

    def _sample(self) -> None:
        me = psutil.Process(os.getpid()).memory_full_info()
        self.driver["rss"] = max(self.driver["rss"], me.rss)
        self.driver["uss"] = max(self.driver["uss"], me.uss)
        for p in psutil.process_iter(["pid", "name", "cmdline"]):
            title = " ".join(p.info["cmdline"] or []) or p.info["name"] or ""
            if "ray::" not in title or "train" not in title.lower():
                continue
            try:
                m = p.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            rec = self.trials.setdefault(p.pid, {"rss": 0, "uss": 0})
            rec["rss"], rec["uss"] = max(rec["rss"], m.rss), max(rec["uss"], m.uss)

    def __enter__(self):
        def loop():
            while not self._stop.wait(0.2):
                self._sample()

        threading.Thread(target=loop, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._stop.set()


def run(splits, concurrency: int, args) -> dict:
    from cifar_sweeps.sweepspec.schema import parse_spec

    spec = parse_spec(
        {
            "name": f"mem-{concurrency}",
            "num_samples": 1,
            "max_concurrent_trials": concurrency,
            "search": {"algorithm": "grid"},
            "scheduler": {"type": "fifo"},
            "resources_per_trial": {"cpu": 1},
            "fixed": {"model": args.model, "epochs": 1, "batch_size": 256},
            "params": {"lr": {"type": "choice", "values": [0.01 * (i + 1) for i in range(concurrency)]}},
        }
    )
    with Sampler() as sampler:
        fit_sweep(spec, splits)
        time.sleep(0.5)
    return {"driver": sampler.driver, "trials": list(sampler.trials.values())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=default_data())
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    ap.add_argument(
        "--baseline-data",
        default="synthetic:6000",
        help="a small data set: the same code's memory without the big arrays",
    )
    args = ap.parse_args(argv)
    say_data(args.data)

    import ray

    ray.init(num_cpus=max(args.concurrency), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    rows = []
    base_uss = None
    for label, source, conc in [("baseline", args.baseline_data, [1]), ("full", args.data, args.concurrency)]:
        splits = load_splits(source, cache_dir())
        data_mb = sum(a.nbytes for a in (splits.x_train, splits.x_val, splits.x_test)) / MB
        for c in conc:
            r = run(splits, c, args)
            uss = [t["uss"] / MB for t in r["trials"]] or [0.0]
            rss = [t["rss"] / MB for t in r["trials"]] or [0.0]
            base_uss = max(uss) if base_uss is None else base_uss
            rows.append(
                [
                    label,
                    data_mb,
                    c,
                    len(r["trials"]),
                    r["driver"]["rss"] / MB,
                    max(rss),
                    max(uss),
                    max(uss) - base_uss,
                    sum(uss),
                ]
            )
            print(f"  {label} {c} concurrent: {r}", flush=True)
    ray.shutdown()
    print()
    print_table(
        [
            "data",
            "data MB",
            "concurrent",
            "trial procs",
            "driver RSS MB",
            "trial RSS MB (max)",
            "trial USS MB (max)",
            "USS over baseline",
            "trials USS MB (sum)",
        ],
        rows,
    )
    print("target: a trial's private memory (USS) grows by far less than the data set: it maps the shared copy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
