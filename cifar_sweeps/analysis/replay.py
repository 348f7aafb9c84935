"""Tabulated tasks (benchmarks/tabulate.py) and what a replay on them answers: the table,
the nearest tabulated configuration of a suggestion, the anytime curves' figures and their
schema. The replay itself (the searcher and scheduler a sweep builds, fed the table's
learning curves on a simulated clock) is tuning/replay.py.

- A suggestion maps to the nearest tabulated configuration: each parameter scaled to [0, 1]
  on its own scale (log for loguniform), a choice counting 0 when equal and 1 when not,
  squared Euclidean distance over the table's parameters.
- A trial then follows that configuration's curve for one training seed (the replay seed and
  the trial's number pick which), epoch by epoch, each epoch costing its tabulated seconds;
  `max_concurrent_trials` run at once; the scheduler's STOP ends a trial.

What a table stands for: one task's space, on the images, subset and CPU it was measured on
(its JSON says which). What it doesn't: another model, another data set, or this machine's
seconds. A replay compares searchers on a task like the user's; it does not predict the
accuracy of the user's own sweep.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from cifar_sweeps.errors import InputError, NotFound

# A curve's point: (validation accuracy, test accuracy, seconds of the epoch).
Epoch = tuple[float, float, float]
# An anytime curve's point: (simulated seconds, best validation so far, that trial's test).
Best = tuple[float, float, float]


@dataclass
class Table:
    space: dict[str, Any]  # {"fixed": ..., "params": ...}
    configs: dict[int, dict[str, Any]]
    curves: dict[tuple[int, int], list[Epoch]]  # (config, seed) -> one Epoch per epoch
    seeds: int = 1
    meta: dict[str, Any] = field(default_factory=dict)
    _index: tuple[list[int], Any] | None = field(default=None, repr=False)  # ids, their coordinates

    def coordinates(self) -> tuple[list[int], Any]:
        """The configurations' ids and an (n, parameters) array of their coordinates, once."""
        if self._index is None:
            import numpy as np

            ids, params = list(self.configs), self.space["params"]
            rows = [[coordinate(p, self.configs[i][k]) for k, p in params.items()] for i in ids]
            self._index = (ids, np.asarray(rows, dtype=float).reshape(len(ids), len(params)))
        return self._index

    def curve(self, config_id: int, seed: int) -> list[Epoch]:
        return self.curves.get((config_id, seed % self.seeds)) or self.curves[(config_id, 0)]


def load_table(path: Path) -> Table:
    meta = json.loads(path.with_suffix(".json").read_text())
    configs: dict[int, dict[str, Any]] = {}
    curves: dict[tuple[int, int], list[Epoch]] = {}
    with path.open() as f:
        for r in csv.DictReader(f):
            cid, seed = int(r["config_id"]), int(r["seed"])
            configs[cid] = json.loads(r["params"])
            curves.setdefault((cid, seed), []).append((float(r["val_acc"]), float(r["test_acc"]), float(r["seconds"])))
    if not curves:
        raise InputError(f"the table {path.name} has no rows yet: run benchmarks/tabulate.py")
    return Table(meta["space"], configs, curves, max(s for _, s in curves) + 1, meta)


def tables_dir(setting: str = "") -> Path:
    """The setting's folder, or the tables committed beside the package (a source checkout's
    benchmarks/tables)."""
    return Path(setting).expanduser() if setting else Path(__file__).resolve().parents[2] / "benchmarks" / "tables"


def find_table(name: str, folder: Path, allow_path: bool = False) -> Path:
    """A table by task name (`mlp`) in `folder`, or (`allow_path`: the CLI, never HTTP) by
    the path of its CSV."""
    if allow_path and name.endswith(".csv"):
        path = Path(name)
    else:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise InputError(f"replay: {name!r} is not a table's name")
        path = folder / f"{name}.csv"
    if not path.is_file() or not path.with_suffix(".json").is_file():
        names = sorted(p.stem for p in folder.glob("*.csv")) if folder.is_dir() else []
        raise NotFound(f"replay: no table {name!r}; tables: {', '.join(names) or 'none (run benchmarks/tabulate.py)'}")
    return path


# ------------------------------------------------------------ the nearest configuration (pure)


def coordinate(p: dict[str, Any], v: Any) -> float:
    if p["type"] == "choice":
        return float(p["values"].index(v)) if v in p["values"] else -1.0
    if p["type"] in ("loguniform", "qloguniform"):
        return (math.log(v) - math.log(p["low"])) / (math.log(p["high"]) - math.log(p["low"]))
    return (float(v) - p["low"]) / (p["high"] - p["low"])


def distance(params: dict[str, dict[str, Any]], a: dict[str, Any], b: dict[str, Any]) -> float:
    total = 0.0
    for name, p in params.items():
        if p["type"] == "choice":
            total += 0.0 if a.get(name) == b.get(name) else 1.0
        else:
            total += (coordinate(p, a[name]) - coordinate(p, b[name])) ** 2
    return total


def nearest(table: Table, suggestion: dict[str, Any]) -> int:
    """`distance`'s nearest configuration (the first of equals), over the whole table at once."""
    import numpy as np

    params = table.space["params"]
    ids, coords = table.coordinates()
    point = np.asarray([coordinate(p, suggestion[k]) for k, p in params.items()], dtype=float)
    is_choice = np.asarray([p["type"] == "choice" for p in params.values()], dtype=bool)
    diff = coords - point
    cost = np.where(is_choice, (diff != 0).astype(float), diff**2).sum(axis=1)
    return ids[int(np.argmin(cost))]


def at(curve: list[Best], t: float) -> tuple[float, float]:
    """(best validation, its test) at simulated time t (nan before the first result)."""
    seen = [c for c in curve if c[0] <= t]
    return (seen[-1][1], seen[-1][2]) if seen else (math.nan, math.nan)


def interval(xs: list[float]) -> tuple[float, float, float]:
    """Mean and its 95 % t-interval, NaNs left out."""
    from scipy import stats

    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return math.nan, math.nan, math.nan
    m = statistics.fmean(xs)
    half = stats.t.ppf(0.975, len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else math.nan
    return m, m - half, m + half


# ------------------------------------------------------------ a spec's replay (plan --replay)


class ReplayPoint(BaseModel):
    seconds: float = Field(description="simulated seconds of the table's CPU")
    fraction: float = Field(description="of the replay's budget")
    # None before any seed has a result
    val_acc: float | None = Field(description="the best validation accuracy so far, mean over seeds")
    val_low: float | None = None
    val_high: float | None = None
    test_acc: float | None = Field(None, description="the test accuracy of that best trial's epoch, mean over seeds")


class ReplayOut(BaseModel):
    """What the spec's searcher and scheduler would find on a tabulated task."""

    table: str
    configs: int
    cpu: str
    seeds: int
    budget_s: float = Field(description="simulated seconds: the spec's time budget, or its trials' mean")
    trials: float = Field(description="trials started, mean over seeds")
    points: list[ReplayPoint]
    note: str


REPLAY_POINTS = (0.1, 0.25, 0.5, 0.75, 1.0)
FIGURES = ("val_acc", "val_low", "val_high", "test_acc")
MAX_REPLAY_SEEDS = 200


def describe_replay(out: ReplayOut) -> str:
    lines = [
        f"replay on the table {out.table} ({out.configs} configurations, {out.cpu}), {out.seeds} seeds, "
        f"{out.trials:.1f} trials started on average:",
        "  simulated s   best validation (95% CI)     its test",
    ]
    for p in out.points:
        pct = [f"{x * 100:6.2f}" if x is not None else "     -" for x in (p.val_acc, p.val_low, p.val_high, p.test_acc)]
        lines.append(f"  {p.seconds:>11.0f}   {pct[0]} [{pct[1]}, {pct[2]}]     {pct[3]}")
    lines.append(f"  ({out.note})")
    return "\n".join(lines)
