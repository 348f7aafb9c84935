"""A sweep's search replayed on a tabulated task (analysis/replay.py's tables): the searcher
and scheduler a sweep builds (`tuning.searchers.make_search`, `tuning.schedulers.make_scheduler`),
fed learning curves measured once, on a simulated clock. Hundreds of seeds in minutes; no
training.

`python -I -m cifar_sweeps.tuning.replay` with {"spec", "table", "seeds"} as JSON on stdin
prints a ReplayOut: the plan's `replay` (a process of its own, as the service's other
children: the API process never imports Ray Tune's searchers).
"""

from __future__ import annotations

import heapq
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifar_sweeps.analysis.replay import (
    FIGURES,
    MAX_REPLAY_SEEDS,
    REPLAY_POINTS,
    Best,
    Epoch,
    ReplayOut,
    ReplayPoint,
    Table,
    at,
    interval,
    load_table,
    nearest,
)
from cifar_sweeps.errors import InputError


@dataclass(frozen=True)
class ReplayTrial:
    """What a Tune scheduler reads of a trial."""

    trial_id: str
    config: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def table_spec(table: Table, method: dict[str, Any], seed: int, num_samples: int = 100_000):
    """A spec over the table's space with `method`'s searcher, scheduler and limits."""
    from cifar_sweeps.sweepspec.schema import parse_spec

    raw = {
        "name": "replay",
        "metric": "best_val_acc",
        "mode": "max",
        "num_samples": num_samples,
        "max_concurrent_trials": 2,
        "fixed": table.space["fixed"],
        "params": table.space["params"],
        **json.loads(json.dumps(method)),
    }
    raw["search"] = {**raw.get("search", {}), "seed": seed}
    return parse_spec(raw)


def reseeded(spec, seed: int):
    return spec.model_copy(update={"search": spec.search.model_copy(update={"seed": seed})})


def replay(table: Table, spec, seed: int, budget_s: float, stats: dict[str, float] | None = None) -> list[Best]:
    """The anytime curve of one run: a point at each result that improved the best, up to
    `budget_s` simulated seconds; `stats`, if given, gets the simulated `seconds` used and
    the `trials` started."""
    import numpy as np

    from cifar_sweeps.sweepspec.spaces import flatten_config
    from cifar_sweeps.tuning.schedulers import make_scheduler
    from cifar_sweeps.tuning.searchers import make_search

    np.random.seed(seed)  # ASHA picks its bracket with numpy's global RNG
    searcher = make_search(spec)
    scheduler = make_scheduler(spec, "sqlite://", "replay")
    events: list[tuple[float, int, str]] = []  # (when a trial's next epoch ends, order, trial id)
    trials: dict[str, tuple[ReplayTrial, list[Epoch], list[float]]] = {}
    clock, started, order, best = 0.0, 0, 0, -1.0
    curve: list[Best] = []

    def start() -> bool:
        nonlocal started, order
        tid = f"t{started}"
        config = searcher.suggest(tid)
        if config is None:
            return False
        runs = table.curve(nearest(table, flatten_config(config)), seed + started)
        trial = ReplayTrial(tid, config)
        scheduler.on_trial_add(None, trial)
        trials[tid] = (trial, runs, [])
        heapq.heappush(events, (clock + runs[0][2], order, tid))
        started, order = started + 1, order + 1
        return True

    while len(events) < spec.max_concurrent_trials and started < spec.num_samples and start():
        pass
    while events:
        clock, _, tid = heapq.heappop(events)
        if clock > budget_s:
            break
        trial, runs, vals = trials[tid]
        val, test, _ = runs[len(vals)]
        vals.append(val)
        epoch = len(vals)
        result = {"epoch": epoch, "training_iteration": epoch, "val_acc": val, "best_val_acc": max(vals)}
        if val > best:
            best = val
            curve.append((clock, val, test))
        action = scheduler.on_trial_result(None, trial, result)
        searcher.on_trial_result(tid, result)
        if action == "STOP" or epoch == len(runs):
            scheduler.on_trial_complete(None, trial, result)
            searcher.on_trial_complete(tid, result)
            if started < spec.num_samples:
                start()
        else:
            heapq.heappush(events, (clock + runs[epoch][2], order, tid))
            order += 1
        if stats is not None:
            stats.update(seconds=clock, trials=started)
    return curve


# ------------------------------------------------------------ a spec's replay (plan --replay)


def replay_spec(spec, table: Table, name: str, seeds: int = 20) -> ReplayOut:
    """The spec's searcher, scheduler, trials at once, trial count and time budget, replayed
    over the table's space (its own space may differ: the table is the task's)."""
    if not 1 <= seeds <= MAX_REPLAY_SEEDS:
        raise InputError(f"replay: seeds must be 1..{MAX_REPLAY_SEEDS}, got {seeds}")
    if spec.scheduler.type == "pbt":
        raise InputError(
            "replay: pbt changes a trial's configuration in the middle of training, and a table holds the curves "
            "of fixed configurations only, so it can't replay pbt"
        )
    method = {
        # the spec's own points and warm start name its space, not the table's: left out
        "search": spec.search.model_dump(mode="json", exclude={"seed", "points_to_evaluate", "warm_start"}),
        "scheduler": spec.scheduler.model_dump(mode="json"),
        "max_concurrent_trials": spec.max_concurrent_trials,
    }
    base = table_spec(table, method, 0, num_samples=spec.num_samples)
    curves, runs = [], []
    budget = float(spec.time_budget_s or math.inf)
    for s in range(seeds):
        runs.append({"seconds": 0.0, "trials": 0})
        curves.append(replay(table, reseeded(base, s), s, budget, runs[-1]))
    if math.isinf(budget):
        budget = statistics.fmean(r["seconds"] for r in runs)
    points = []
    for f in REPLAY_POINTS:
        vals = [at(c, f * budget) for c in curves]
        m, lo, hi = interval([v for v, _ in vals])
        tests = [t for _, t in vals if not math.isnan(t)] or [math.nan]
        figures = [None if math.isnan(x) else x for x in (m, lo, hi, statistics.fmean(tests))]
        points.append(ReplayPoint(seconds=f * budget, fraction=f, **dict(zip(FIGURES, figures, strict=True))))
    return ReplayOut(
        table=name,
        configs=len(table.configs),
        cpu=str(table.meta.get("cpu", "unknown")),
        seeds=seeds,
        budget_s=budget,
        trials=statistics.fmean(r["trials"] for r in runs),
        points=points,
        note=(
            "the spec's searcher and scheduler on the table's space and seconds "
            f"({table.meta.get('data', '?')}, {table.meta.get('cpu', '?')}): a comparison of searches on a task "
            "like yours, not a forecast of your sweep's accuracy"
        ),
    )


def main() -> int:
    from cifar_sweeps.subprocs import read_request
    from cifar_sweeps.sweepspec.schema import parse_spec

    request = read_request()
    path = Path(request["table"])
    out = replay_spec(parse_spec(request["spec"]), load_table(path), path.stem, int(request["seeds"]))
    print(out.model_dump_json(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
