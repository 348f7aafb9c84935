"""A sweep's Pareto front over two stored metrics: what GET /sweeps/{id}/pareto serves and
`cifar-sweeps pareto` prints (ranking.py's ranks over the sweep's completed search trials)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cifar_sweeps.errors import InputError


class ParetoPoint(BaseModel):
    trial_id: str
    model: str
    config: dict[str, Any]
    x: float
    y: float
    rank: int  # its front: 1 is the non-dominated set
    checkpoint_url: str | None = None


class ParetoOut(BaseModel):
    """A sweep's trials over two stored metrics, each with its Pareto rank; `front` is the
    non-dominated set (rank 1), sorted by x."""

    sweep_id: str
    x: str
    y: str
    x_mode: str
    y_mode: str
    items: list[ParetoPoint]
    front: list[str]
    skipped: int  # completed trials without both metrics (measured before costs were, or errored)


def pareto_out(sweep_id: str, spec: dict, trials: list, x: str | None, y: str | None, url_of) -> ParetoOut:
    """The front over stored metrics x and y (metrics.STORED; by default the spec's first two
    objectives, else params and best_val_acc) of the sweep's completed trials."""
    from cifar_sweeps.analysis.ranking import pareto_ranks, searched
    from cifar_sweeps.store.states import TRIAL_COMPLETED
    from cifar_sweeps.sweepspec.metrics import DEFAULT_FRONT, STORED, stored_name

    named = [stored_name(o["metric"]) for o in spec.get("objectives") or []]
    default = named[:2] if len(named) >= 2 else DEFAULT_FRONT
    x, y = x or default[0], y or default[1]
    if x == y:
        raise InputError(f"x and y are both {x}: a front needs two different metrics")
    (xc, xm), (yc, ym) = STORED[x], STORED[y]
    done = [t for t in searched(trials) if t.status in TRIAL_COMPLETED]
    usable = [t for t in done if getattr(t, xc) is not None and getattr(t, yc) is not None]
    ranks = pareto_ranks([(getattr(t, xc), getattr(t, yc)) for t in usable], [xm, ym])
    items = [
        ParetoPoint(
            trial_id=t.id,
            model=t.model,
            config=t.config,
            x=getattr(t, xc),
            y=getattr(t, yc),
            rank=r,
            checkpoint_url=url_of(t),
        )
        for t, r in zip(usable, ranks, strict=True)
    ]
    items.sort(key=lambda p: (p.rank, p.x, p.trial_id))
    front = [p.trial_id for p in items if p.rank == 1]
    return ParetoOut(
        sweep_id=sweep_id, x=x, y=y, x_mode=xm, y_mode=ym, items=items, front=front, skipped=len(done) - len(usable)
    )
