"""Response models of the HTTP API: the one schema of every JSON the API returns."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from cifar_sweeps.analysis.schemas import PlanActual, PlanOut
from cifar_sweeps.store.states import Reason, SweepStatus, TrialStatus
from cifar_sweeps.sweepspec.epoch import EpochRecord
from cifar_sweeps.usecases.leaderboard import Exploits  # a trial's PBT steps, as the leaderboard gives them

# The store keeps naive UTC times; the API says so (RFC 3339 with an offset).
UtcTime = Annotated[dt.datetime, AfterValidator(lambda d: d if d.tzinfo else d.replace(tzinfo=dt.UTC))]


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
