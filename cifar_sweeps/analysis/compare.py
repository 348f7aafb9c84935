"""Trials side by side: their configurations as a diff (only what differs, in one table),
their scores, and their curves. One function for `GET /trials/compare` and
`cifar-sweeps compare`; the store's rows in, a pydantic answer out."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from cifar_sweeps.errors import InputError

MIN_TRIALS, MAX_TRIALS = 2, 20
SCORES = ("val_acc", "test_acc", "best_epoch", "epochs", "seconds", "params", "latency_ms")


class ComparedTrial(BaseModel):
    id: str
    sweep_id: str
    model: str
    status: str
    refit_of: str | None = None
    scores: dict[str, float | int | None]


class CurvePoint(BaseModel):
    epoch: int
    val_acc: float | None
    train_loss: float
    lr: float


class Comparison(BaseModel):
    """Trials side by side: `differ` holds each config key whose values are not all equal
    (one value per trial, in `trials`' order; a key a trial lacks is null), `same` the rest."""

    trials: list[ComparedTrial]
    differ: dict[str, list[Any]]
    same: dict[str, Any]
    curves: dict[str, list[CurvePoint]]


def parse_ids(ids: list[str]) -> list[str]:
    """The trial ids asked for (a comma list or repeated), in order, without repeats."""
    out: list[str] = []
    for part in ids:
        out += [i.strip() for i in part.split(",") if i.strip() and i.strip() not in out]
    if not MIN_TRIALS <= len(out) <= MAX_TRIALS:
        raise InputError(f"ids: compare {MIN_TRIALS} to {MAX_TRIALS} trials, got {len(out)}")
    return out


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def config_diff(configs: list[dict[str, Any]]) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """(the keys whose values differ, with each trial's value; the keys all trials share)."""
    keys = sorted({k for c in configs for k in c})
    differ, same = {}, {}
    for k in keys:
        values = [c.get(k) for c in configs]
        if len({_key(v) for v in values}) == 1 and all(k in c for c in configs):
            same[k] = values[0]
        else:
            differ[k] = values
    return differ, same


def compare(store, ids: list[str]) -> Comparison:
    """The trials `ids` (NotFound naming the first missing one), side by side."""
    trials = [store.trial(i) for i in parse_ids(ids)]
    differ, same = config_diff([dict(t.config) for t in trials])
    return Comparison(
        trials=[
            ComparedTrial(
                id=t.id,
                sweep_id=t.sweep_id,
                model=t.model,
                status=t.status,
                refit_of=t.refit_of,
                scores={k: getattr(t, k) for k in SCORES},
            )
            for t in trials
        ],
        differ=differ,
        same=same,
        curves={
            t.id: [
                CurvePoint(epoch=e.epoch, val_acc=e.val_acc, train_loss=e.train_loss, lr=e.lr)
                for e in store.epochs(t.id)
            ]
            for t in trials
        },
    )


def _curve(store, trial_id: str) -> list[CurvePoint]:
    return [
        CurvePoint(epoch=e.epoch, val_acc=e.val_acc, train_loss=e.train_loss, lr=e.lr) for e in store.epochs(trial_id)
    ]


def describe_comparison(c: Comparison) -> str:
    """The comparison as a terminal table: one column per trial, the scores, then the
    configuration keys that differ (those all share, on one line)."""
    names = [t.id.rsplit("-", 1)[-1] for t in c.trials]
    rows = [("", names), ("model", [t.model for t in c.trials]), ("status", [t.status for t in c.trials])]
    rows += [(k, [_fmt(t.scores.get(k)) for t in c.trials]) for k in SCORES]
    rows += [(k, [_fmt(v) for v in vals]) for k, vals in c.differ.items()]
    width = max(len(k) for k, _ in rows)
    cols = [max(len(str(v)) for _, vals in rows for v in [vals[i]]) for i in range(len(names))]
    lines = [f"{k:<{width}}  " + "  ".join(f"{str(v):>{cols[i]}}" for i, v in enumerate(vals)) for k, vals in rows]
    if c.same:
        lines.append("the same in all: " + ", ".join(f"{k}={_fmt(v)}" for k, v in c.same.items()))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
