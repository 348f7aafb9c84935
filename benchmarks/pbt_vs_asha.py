"""Population-based training against ASHA, at equal wall time on this CPU, over seeds:

    python benchmarks/pbt_vs_asha.py --seeds 0 1 2 --minutes 5

Both search the same space of the course MLP (lr and weight decay, log ranges), two
one-CPU trials at a time, in the same `time_budget_s`, each in its own usual setting:
- `asha`: the service's default searcher (HyperOpt's TPE) and ASHA (grace 1, reduction 3)
  over trials of `--epochs` with the net's own lr schedule, new trials as long as the time
  lasts;
- `pbt`: a population of `--population` trials drawn at random, at a constant lr, as long
  as the time lasts (taking turns when the population outnumbers the slots); every 2
  epochs the bottom quarter goes on from the top quarter's weights with lr and weight decay
  scaled by 0.8 or 1.2 (or drawn afresh, 1 in 4).

The score of a run: the test accuracy of its best trial by validation accuracy (no refit:
a pbt model is not one configuration). Every run is one line of `--out` (JSON lines): a
killed benchmark goes on where it stopped. The table: each method's mean with its 95 %
t-interval, and the paired difference pbt - asha, seed by seed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import append_run, cpu_model, default_data, print_table, read_runs, say_data  # noqa: E402
from benchmarks.search_gain import t_interval  # noqa: E402

METHODS = ("asha", "pbt")
SPACE = {
    "lr": {"type": "loguniform", "low": 1e-3, "high": 0.5},
    "weight_decay": {"type": "loguniform", "low": 1e-5, "high": 1e-2},
}


def spec(method: str, seed: int, seconds: float, epochs: int, population: int) -> dict:
    out = {
        "name": f"pbt-vs-asha-{method}-{seed}",
        "num_samples": 200,  # the time budget ends the search
        "max_concurrent_trials": 2,
        "resources_per_trial": {"cpu": 1, "gpu": 0},
        "fixed": {"model": "mlp", "epochs": epochs, "batch_size": 128, "seed": seed},
        "params": SPACE,
        "time_budget_s": seconds,
        "data": {"val_fraction": 0.1},
        "search": {"seed": seed},
    }
    if method == "pbt":
        # PBT's own setting: trials as long as the time lasts (the budget stops them; their
        # best weights are tested then), at a constant lr that PBT alone changes.
        out["fixed"] = {**out["fixed"], "epochs": 500, "lr_schedule": "none"}
        out["num_samples"] = population
        out["search"] = {"algorithm": "random", "seed": seed}
        out["scheduler"] = {"type": "pbt", "perturbation_interval": 2, "mutate": ["lr", "weight_decay"]}
    return out


def run(method: str, data: str, seed: int, seconds: float, epochs: int, population: int) -> dict:
    import cifar_sweeps as cs

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        result = cs.run(spec(method, seed, seconds, epochs, population), data=data, results_dir=d, quiet=True)
        board = [t for t in result.leaderboard(top=1000) if t.test_acc is not None]
        best = max(board, key=lambda t: t.val_acc or 0.0) if board else None
        trained = [t for t in result.leaderboard(top=1000) if t.epochs]
        exploits = sum(len(t.exploits) for t in trained)
        shutil.rmtree(Path(d) / "ray", ignore_errors=True)
    return {
        "test_acc": best.test_acc if best else None,
        "val_acc": best.val_acc if best else None,
        "configs": len(trained),
        "trial_epochs": sum(t.epochs for t in trained),
        "exploits": exploits,
        "wall_s": time.perf_counter() - t0,
    }


def table(rows: list[dict]) -> None:
    by = {m: {r["seed"]: r for r in rows if r["method"] == m and r["test_acc"] is not None} for m in METHODS}
    out = []
    for m in METHODS:
        accs = [r["test_acc"] * 100 for r in by[m].values()]
        if accs:
            mean, lo, hi = t_interval(accs)
            runs = by[m].values()
            means = [statistics.fmean(r[k] for r in runs) for k in ("configs", "trial_epochs", "exploits")]
            out.append([m, len(accs), mean, lo, hi, *means, statistics.fmean(r["wall_s"] for r in runs) / 60])
    if not out:
        print("\nno run has a tested trial yet")
        return
    print("\nthe best trial's test accuracy (%) over seeds")
    print_table(
        ["method", "seeds", "mean", "95% low", "95% high", "configs", "trial-epochs", "exploits", "wall min"], out
    )
    seeds = sorted(set(by["pbt"]) & set(by["asha"]))
    d = [(by["pbt"][s]["test_acc"] - by["asha"][s]["test_acc"]) * 100 for s in seeds]
    if d:
        mean, lo, hi = t_interval(d)
        verdict = "better" if lo > 0 else "worse" if hi < 0 else "not distinguishable"
        print_table(
            ["paired difference", "seeds", "mean", "95% low", "95% high", "verdict"],
            [["pbt - asha", len(d), mean, lo, hi, verdict]],
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--minutes", type=float, default=5.0, help="the wall time of every run")
    p.add_argument("--epochs", type=int, default=12, help="the length of a trial")
    p.add_argument("--population", type=int, default=4, help="pbt's trials")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--data", default=default_data(), help="default: the PNG archive beside the checkout")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/pbt_vs_asha.jsonl"))
    args = p.parse_args()
    say_data(args.data)
    print(f"cpu: {cpu_model()}", flush=True)
    rows = read_runs(args.out)
    setting = {"minutes": args.minutes, "epochs": args.epochs, "population": args.population, "data": args.data}
    done = {(r["method"], r["seed"]) for r in rows if all(r.get(k) == v for k, v in setting.items())}
    for seed in args.seeds:
        for method in args.methods:
            if (method, seed) in done:
                continue
            result = run(method, args.data, seed, args.minutes * 60, args.epochs, args.population)
            row = {"method": method, "seed": seed, **setting, "cpu": cpu_model(), **result}
            rows.append(row)
            append_run(args.out, row)
            print(
                f"{method} seed {seed}: test {result['test_acc']} from {result['configs']} trials, "
                f"{result['exploits']} exploits, {result['wall_s']:.0f} s",
                flush=True,
            )
    table([r for r in rows if all(r.get(k) == v for k, v in setting.items())])


if __name__ == "__main__":
    main()
