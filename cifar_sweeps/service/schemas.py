"""Response models of the HTTP API: the one schema of every JSON the API returns."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from cifar_sweeps.analysis.results import PlanActual, PlanOut
from cifar_sweeps.errors import InputError
from cifar_sweeps.spec.epoch import EpochRecord
from cifar_sweeps.store.states import Exploit, Reason, SweepStatus, TrialStatus

# The store keeps naive UTC times; the API says so (RFC 3339 with an offset).
UtcTime = Annotated[dt.datetime, AfterValidator(lambda d: d if d.tzinfo else d.replace(tzinfo=dt.UTC))]


# A trial's PBT steps; rows stored before there were any hold None.
Exploits = Annotated[list[Exploit], BeforeValidator(lambda v: v or [])]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorOut(BaseModel):
    detail: str
    errors: list[dict[str, Any]] | None = None


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer."""
    text = {
        400: "Malformed request",
        401: "Missing or wrong API token",
        404: "Not found",
        409: "Not allowed in the sweep's current status",
        413: "Request body too large",
        415: "Not a PNG or JPEG image",
        422: "Invalid input (the message names the field)",
        429: "Too many sweeps queued",
        503: "Ray cluster or store unreachable, or busy (Retry-After)",
        507: "Results folder or store read-only or full",
    }
    return {c: {"model": ErrorOut, "description": text[c]} for c in codes}


class Links(BaseModel):
    self: str
    leaderboard: str
    ray_dashboard: str | None = None


class BestTrial(BaseModel):
    """The sweep's model: its refit once one has started (ranked beside its source), else its
    best trial."""

    trial_id: str
    val_acc: float | None
    test_acc: float | None
    refit_of: str | None = None  # a refit: the search trial whose configuration it trained again
    train_images: int | None = None  # the images it trained on (a refit: training + validation)


class RunningTrial(BaseModel):
    trial_id: str
    epoch: int
    epochs_budget: int | None


class Progress(BaseModel):
    trials_total: int
    trials_done: int  # ended: trained to the end, stopped early or errored
    running: list[RunningTrial]
    epochs_done: int  # trial-epochs trained: what the sweep has spent of a budget
    budget_epochs: int | None = None  # the spec's budget.epochs
    seconds_per_epoch: float | None  # measured so far, over every trial
    eta_s: float | None  # an estimate: the epochs left (budgets of unstarted trials included) at that pace


class SweepOut(_Out):
    id: str
    name: str
    status: SweepStatus
    reason: Reason | None = None  # why it was interrupted or failed
    ray_job_id: str | None
    created_at: UtcTime
    started_at: UtcTime | None
    finished_at: UtcTime | None
    code_version: str
    data_source: str
    dataset: str | None = None  # its data set, once the driver has loaded it (data.dataset_name)
    classes: list[str] | None = None  # the data set's class names, label i first (a list view: at most 12)
    class_count: int | None = None  # how many classes it has
    error: str | None
    spec: dict[str, Any]
    warm_trials: int | None = None  # finished trials of earlier sweeps given to the searcher
    trial_counts: dict[str, int] = {}
    best_trial: BestTrial | None = None
    progress: Progress | None = None
    plan: PlanOut | None = None  # the plan made at submit (POST /sweeps, cifar-sweeps run)
    plan_actual: PlanActual | None = None  # once it ended: the plan's estimate against what it took
    warnings: list[str] = []  # POST /sweeps: the plan's warnings (a worst case past time_budget_s or hours)
    links: Links | None = None


class SweepList(BaseModel):
    items: list[SweepOut]
    total: int
    limit: int
    offset: int


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
    from cifar_sweeps.spec.metrics import DEFAULT_FRONT, STORED, stored_name
    from cifar_sweeps.store.states import TRIAL_COMPLETED

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


class EpochOut(EpochRecord, _Out):
    node_id: str | None = None  # the Ray node it ran on


class TrialOut(_Out):
    id: str
    sweep_id: str
    tune_trial_id: str
    model: str
    config: dict[str, Any]
    status: TrialStatus
    val_acc: float | None
    val_loss: float | None
    test_acc: float | None
    best_epoch: int | None
    epochs: int
    epochs_budget: int | None
    seconds: float
    error: str | None
    node_id: str | None = None  # the Ray node of its latest epoch
    params: float | None = None  # parameter count
    latency_ms: float | None = None  # inference ms per image at batch 1, on the trial's device
    latency_ms_batch: float | None = None  # ... at a large batch (train.LATENCY_BATCH)
    seconds_to_best: float | None = None  # training seconds up to the best epoch
    repeat_of: str | None = None
    refit_of: str | None = None  # a refit: the search trial whose configuration it trained again
    continue_of: str | None = None  # a continuation: the trial whose last checkpoint it trained on from
    train_images: int | None = None  # how many images it trained on
    exploits: Exploits = []  # population-based training's steps of it (a pbt sweep), in order
    started_at: UtcTime
    finished_at: UtcTime | None
    checkpoint_url: str | None = None
    curves: list[EpochOut] = []


class SearchSpaceInfo(BaseModel):
    name: str
    description: str
    trials: int
    url: str


class SearchSpaceList(BaseModel):
    items: list[SearchSpaceInfo]


class Health(BaseModel):
    status: str
    store: str
    ray: str
    ray_dashboard: str
    version: str


class ClassProb(BaseModel):
    label: str
    prob: float


class ImagePrediction(BaseModel):
    file: str
    top: list[ClassProb]  # best first


class Prediction(BaseModel):
    trial_id: str
    model: str
    normalize: str
    classes: list[str] = []  # the model's classes (its data set's), label i first
    predictions: list[ImagePrediction]
