"""The leaderboard read, the one place every front end gets it from: the routes
(GET /leaderboard, /leaderboard.csv), the CLI (`cifar-sweeps leaderboard`) and the Python
API (`cifar_sweeps.leaderboard`). A query (`BoardQuery`) in, read models out: ranked trials
(`read_board`) or configurations over their seeds (`read_groups`), and their CSV. The front
ends parse their own input into a query and present what comes back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator

from cifar_sweeps.analysis.filters import ConfigFilter
from cifar_sweeps.store.states import Exploit, TrialStatus
from cifar_sweeps.sweepspec.metrics import DEFAULT_ORDER, STORED

# A trial's PBT steps; rows stored before there were any hold None.
Exploits = Annotated[list[Exploit], BeforeValidator(lambda v: v or [])]
# Trials grouped at most: a grouped view reads every matching trial to form its groups.
MAX_GROUPED_TRIALS = 100_000


@dataclass(frozen=True)
class BoardQuery:
    """What a leaderboard read asks for: which trials (a sweep, a model, statuses, config
    filters, a data set), in which order (any stored metric, best first) and which page."""

    sweep_id: str | None = None
    model: str | None = None
    statuses: list[str] = field(default_factory=list)
    filters: list[ConfigFilter] = field(default_factory=list)
    offset: int = 0
    limit: int = 50
    sort: str = DEFAULT_ORDER
    dataset: str | None = None


def read_board(store, q: BoardQuery, url_of: Callable[[Any], str | None]) -> tuple[list[LeaderboardItem], int]:
    """The ranked trials of a query and how many match; `url_of(trial)` gives its model
    file's URL (the API's) or path (the CLI's and the Python API's), or None."""
    rows, total, names = store.leaderboard_page(
        q.sweep_id, q.model, q.limit, q.offset, q.filters, q.statuses, STORED[q.sort], q.dataset
    )
    items = leaderboard_items(rows, names, q.offset, url_of)
    mark_feasible(store, rows, items)
    return items, total


def read_groups(store, q: BoardQuery) -> GroupedLeaderboard:
    """One row per configuration over its seeds (ranking.py), by mean val_acc, paged by groups."""
    from cifar_sweeps.analysis.ranking import group_trials

    rows, _, names = store.leaderboard_page(
        q.sweep_id, q.model, MAX_GROUPED_TRIALS, 0, q.filters, q.statuses, dataset=q.dataset
    )
    groups = group_trials(rows)
    page = groups[q.offset : q.offset + q.limit]
    return GroupedLeaderboard(
        items=group_items(page, names, q.offset),
        total=len(groups),
        limit=q.limit,
        offset=q.offset,
        trials=sum(len(g.trials) for g in groups),
    )


def mark_feasible(store, rows: list, items: list[LeaderboardItem]) -> None:
    """Each item of a sweep with constraints says whether it keeps them (sweepspec/constraints.py)."""
    from cifar_sweeps.sweepspec.constraints import feasible, parse_all

    bounds = {}
    for sid in {t.sweep_id for t in rows}:
        sweep = store.get_sweep(sid)
        raw = (sweep.spec or {}).get("constraints") if sweep is not None else None
        try:
            bounds[sid] = parse_all(raw or [])
        except ValueError:  # a stored spec is valid when stored; an edited one is not trusted
            bounds[sid] = []
    for t, item in zip(rows, items, strict=True):
        if bounds.get(t.sweep_id):
            item.feasible = feasible(bounds[t.sweep_id], t)


# ------------------------------------------------------------ the read models


class LeaderboardItem(BaseModel):
    rank: int
    trial_id: str
    sweep_id: str
    sweep_name: str | None = None
    dataset: str | None = None  # the data set it was trained on (models are ranked within one)
    model: str
    config: dict[str, Any]
    val_acc: float | None
    val_loss: float | None
    test_acc: float | None
    best_epoch: int | None
    epochs: int
    epochs_budget: int | None
    status: TrialStatus
    seconds: float
    node_id: str | None = None  # the Ray node of its latest epoch
    checkpoint_url: str | None
    error: str | None = None  # an errored trial's reason: its error's last line (GET /trials/{id}: all of it)
    params: float | None = None  # parameter count
    latency_ms: float | None = None  # inference ms per image at batch 1, on the trial's device
    latency_ms_batch: float | None = None  # ... at a large batch (train.LATENCY_BATCH)
    seconds_to_best: float | None = None  # training seconds up to the best epoch (`seconds`: in all)
    repeat_of: str | None = None  # the trial whose configuration this one repeats with another seed
    # A refit (tuning/refit.py): the search trial whose configuration it trained again on the
    # training and validation images; its val_acc is that trial's (it has no validation images).
    refit_of: str | None = None
    # A continuation (POST /trials/{id}/continue): the trial whose last checkpoint it trained on from.
    continue_of: str | None = None
    train_images: int | None = None  # how many images it trained on
    exploits: Exploits = []  # population-based training's steps of it (a pbt sweep), in order
    # Its sweep's constraints (spec `constraints`) kept: true or false; None: none were set.
    feasible: bool | None = None


def error_line(text: str | None, limit: int = 300) -> str | None:
    """The line that says what went wrong: the last non-empty line of an error (Python and
    Ray end a traceback with the exception), cut to `limit` characters."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:limit] if lines else None


def leaderboard_items(rows: list, names: dict[str, str], offset: int, url_of) -> list[LeaderboardItem]:
    """Store rows as leaderboard items; `url_of(trial)` gives its model file's URL (or None)."""
    return [
        LeaderboardItem(
            rank=offset + i + 1,
            trial_id=t.id,
            sweep_id=t.sweep_id,
            sweep_name=names.get(t.sweep_id),
            dataset=getattr(t, "dataset", None),
            model=t.model,
            config=t.config,
            val_acc=t.val_acc,
            val_loss=t.val_loss,
            test_acc=t.test_acc,
            best_epoch=t.best_epoch,
            epochs=t.epochs,
            epochs_budget=t.epochs_budget,
            status=t.status,
            seconds=t.seconds,
            node_id=t.node_id,
            checkpoint_url=url_of(t),
            error=error_line(t.error),
            params=t.params,
            latency_ms=t.latency_ms,
            latency_ms_batch=t.latency_ms_batch,
            seconds_to_best=t.seconds_to_best,
            repeat_of=t.repeat_of,
            refit_of=t.refit_of,
            continue_of=t.continue_of,
            train_images=t.train_images,
            exploits=getattr(t, "exploits", None) or [],
        )
        for i, t in enumerate(rows)
    ]


CSV_COLUMNS = [
    "rank",
    "trial_id",
    "sweep_id",
    "sweep_name",
    "dataset",
    "model",
    "status",
    "val_acc",
    "val_loss",
    "test_acc",
    "best_epoch",
    "epochs",
    "epochs_budget",
    "seconds",
    "node_id",
    "checkpoint_url",
    "error",
    "params",
    "latency_ms",
    "latency_ms_batch",
    "seconds_to_best",
    "repeat_of",
    "refit_of",
    "continue_of",
    "train_images",
]


def to_csv(items: list[LeaderboardItem]) -> str:
    """One row per trial: the leaderboard's columns, then `config.NAME` for every config key."""
    return _csv(CSV_COLUMNS, [(it.model_dump(mode="json"), it.config) for it in items])


def to_table(items: list[LeaderboardItem], total: int, one_sweep: bool) -> str:
    """The leaderboard as the terminal shows it (the CLI, a driver's log): a line per
    trial, the data set named above its trials when they come from several sweeps."""
    lines = [
        f"{'rank':>4}  {'trial':<28} {'model':<14} {'val_acc':>7} {'test_acc':>8} {'epochs':>6}  {'status':<13} config"
    ]
    shown = None
    for it in items:
        if it.dataset != shown and not one_sweep:
            lines.append(f"-- data set {it.dataset or 'not loaded yet'}")
            shown = it.dataset
        cfg = {k: v for k, v in it.config.items() if k != "model"}
        short = ", ".join(f"{k}={_fmt(v, '.4g') if isinstance(v, float) else v}" for k, v in cfg.items())
        if it.refit_of:  # the sweep's model: its source's configuration on every training image
            short = f"refit of {it.refit_of} on {it.train_images or '?'} images; {short}"
        lines.append(
            f"{it.rank:>4}  {it.trial_id:<28} {it.model:<14} {_fmt(it.val_acc):>7} {_fmt(it.test_acc):>8} "
            f"{it.epochs:>6}  {it.status:<13} {short}"
        )
    lines.append(f"({len(items)} of {total} trials)")
    return "\n".join(lines)


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "-" if x is None else format(x, spec)


def _csv(columns: list[str], rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """The one CSV writer: each (row, config) as `columns`, then `config.NAME` for every key
    of any row's config; every cell through csv_cell."""
    import csv
    import io

    keys = sorted({k for _, config in rows for k in config})
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(columns + [f"config.{k}" for k in keys])
    for row, config in rows:
        w.writerow([csv_cell(row[c]) for c in columns] + [csv_cell(config.get(k)) for k in keys])
    return out.getvalue()


def csv_cell(v: Any) -> Any:
    """A cell a spreadsheet shows as text: a string it would run as a formula (=, +, -, @,
    tab, carriage return first) gets a leading apostrophe (OWASP's CSV injection advice)."""
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        v = str(v)  # as the csv module writes it
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + v
    return v


class Leaderboard(BaseModel):
    items: list[LeaderboardItem]
    total: int
    limit: int
    offset: int


class GroupItem(BaseModel):
    """One configuration of one sweep over its seeds (ranking.py): n completed runs, the mean,
    std and 95 % t-interval of val_acc and of test_acc (no std or interval for n = 1), its
    best run, its members, and whether it is distinguishable from the next row down."""

    rank: int
    sweep_id: str
    sweep_name: str | None = None
    model: str
    config: dict[str, Any]  # every parameter but the seed
    n: int
    val_acc_mean: float
    val_acc_std: float | None
    val_acc_low: float | None  # the 95 % t-interval of the mean
    val_acc_high: float | None
    test_acc_n: int
    test_acc_mean: float | None
    test_acc_std: float | None
    test_acc_low: float | None
    test_acc_high: float | None
    best_trial_id: str
    best_val_acc: float
    trials: list[str]
    test: str = "welch-t"  # how a row is compared with the next one down
    p_next: float | None  # Welch's two-sided p against the next row (val_acc)
    distinct_from_next: bool | None  # p_next < 0.05; None: not tested (n < 2 on a side, or the last row)
    note: str


class GroupedLeaderboard(BaseModel):
    items: list[GroupItem]
    total: int  # groups
    limit: int
    offset: int
    metric: str = "val_acc"
    confidence: float = 0.95
    trials: int  # completed trials with a score, grouped


def group_items(groups: list, names: dict[str, str], offset: int) -> list[GroupItem]:
    """ranking.Group rows (sorted, compared) as API items, ranked from `offset` + 1."""
    from cifar_sweeps.analysis.ranking import best_trial

    out = []
    for i, g in enumerate(groups):
        best, m, t = best_trial(g, "val_acc", "max"), g.metric, g.test
        out.append(
            GroupItem(
                rank=offset + i + 1,
                sweep_id=g.sweep_id,
                sweep_name=names.get(g.sweep_id),
                model=str(g.config.get("model", best.model)),
                config=g.config,
                n=m.n,
                val_acc_mean=m.mean,
                val_acc_std=m.std,
                val_acc_low=m.low,
                val_acc_high=m.high,
                test_acc_n=t.n,
                test_acc_mean=t.mean,
                test_acc_std=t.std,
                test_acc_low=t.low,
                test_acc_high=t.high,
                best_trial_id=best.id,
                best_val_acc=best.val_acc,
                trials=[x.id for x in g.trials],
                p_next=g.p_next,
                distinct_from_next=g.distinct_from_next,
                note=g.note,
            )
        )
    return out


GROUP_CSV_COLUMNS = [c for c in GroupItem.model_fields if c not in ("config", "trials")] + ["trials"]


def groups_csv(items: list[GroupItem]) -> str:
    """One row per group: its columns, members joined by spaces, then `config.NAME`."""
    rows = [(it.model_dump(mode="json") | {"trials": " ".join(it.trials)}, it.config) for it in items]
    return _csv(GROUP_CSV_COLUMNS, rows)
