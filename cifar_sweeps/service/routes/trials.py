"""Trials: config and curves, and the best model file."""

from __future__ import annotations

import threading
from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import FileResponse

from cifar_sweeps.analysis.compare import Comparison, compare
from cifar_sweeps.errors import Busy, InputError, NotFound
from cifar_sweeps.service.predict_pool import classify_in_worker
from cifar_sweeps.service.routes.deps import Auth, State, StrictJSON, TrialDep, queue_again
from cifar_sweeps.service.routes.presenters import checkpoint_url
from cifar_sweeps.service.schemas import (
    ClassProb,
    EpochOut,
    ImagePrediction,
    Prediction,
    SweepOut,
    TrialOut,
    error_responses,
)
from cifar_sweeps.store.artifacts import local_model_file
from cifar_sweeps.sweepspec.limits import Continuation
from cifar_sweeps.training.predict import MAX_CONCURRENT, MAX_IMAGES, decode
from cifar_sweeps.usecases import again
from cifar_sweeps.usecases.export import export_trial

router = APIRouter(prefix="/trials", tags=["trials"])
PREDICTING = threading.BoundedSemaphore(MAX_CONCURRENT)


@router.get("/compare", response_model=Comparison, responses=error_responses(404, 422))
def compare_trials(
    state: State,
    ids: Annotated[list[str], Query(description="2 to 20 trial ids: ids=a,b or ids=a&ids=b", max_length=20)],
) -> Comparison:
    """Trials side by side: their configurations as a diff (`differ`: only the keys whose
    values are not all equal, a value per trial; `same`: the rest), their scores, and their
    curves (validation accuracy, training loss and lr per epoch)."""
    return compare(state.store, ids)


@router.get("/{trial_id}", response_model=TrialOut, responses=error_responses(404))
def get_trial(t: TrialDep, request: Request, state: State) -> TrialOut:
    out = TrialOut.model_validate(t)
    out.error = state.settings.redact(out.error)
    out.checkpoint_url = checkpoint_url(request, t)
    out.curves = [EpochOut.model_validate(e) for e in state.store.epochs(t.id)]
    return out


@router.post(
    "/{trial_id}/continue",
    response_model=SweepOut,
    dependencies=[Auth, StrictJSON],
    responses=error_responses(400, 401, 404, 409, 413, 422, 503, 507),
)
def continue_trial(t: TrialDep, body: Continuation, request: Request, state: State) -> SweepOut:
    """Train an ended trial `epochs` more from its last checkpoint, as a new row of its sweep
    linked to it (`continue_of`); the answer is the sweep, queued again. A learning-rate
    schedule shaped by the run's length (onecycle, linear, cosine) starts a new segment over
    the new epochs; exponential and step go on decaying. 409 while the sweep runs, for a
    refit, a trial that did not end well or whose last state is gone, or the same epochs twice."""
    sweep = state.store.sweep(t.sweep_id)
    return queue_again(state, sweep, request, again.continue_trial(state.store, t.id, body.epochs, state.settings))


@router.get(
    "/{trial_id}/checkpoint",
    response_class=FileResponse,
    dependencies=[Auth],
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The best model file"},
        **error_responses(401, 404),
    },
)
def checkpoint(t: TrialDep):
    """The trial's best model file (behind the API token when one is set: a model is the
    sweep's product)."""
    from cifar_sweeps.store.artifacts import open_checkpoint

    if not t.checkpoint_path:
        raise NotFound(f"trial {t.id} has no checkpoint yet")
    try:
        return open_checkpoint(t.checkpoint_path, f"{t.id}.pt")
    except FileNotFoundError:
        raise NotFound(f"the checkpoint file of trial {t.id} is gone from storage") from None


@router.get(
    "/{trial_id}/export",
    response_class=FileResponse,
    dependencies=[Auth],
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The exported model file"},
        **error_responses(401, 404, 422, 503),
    },
)
def export(t: TrialDep, state: State, format: Literal["onnx", "torchscript"] = Query("onnx")):  # noqa: A002
    """The trial's best model as ONNX or TorchScript: float32 NCHW images in [0, 1] at the
    size it was trained at in, logits out, its input statistics inside; its class names,
    config and scores in the file's metadata. Made in a process of its own, one at a time,
    and kept by trial, model file and format: asking again answers from the cache. Behind the
    API token when one is set; refused to a page of another site (it starts work)."""
    path = export_trial(state.store, t.id, format, state.settings.cache_dir / "exports")
    return FileResponse(path, filename=f"{t.id}{path.suffix}", media_type="application/octet-stream")


@router.post(
    "/{trial_id}/predict",
    response_model=Prediction,
    dependencies=[Auth],
    responses=error_responses(400, 401, 404, 413, 415, 422, 503),
)
def predict(
    t: TrialDep,
    images: Annotated[list[UploadFile], File(description="PNG or JPEG files, any size")],
    top_k: int = Query(3, ge=1, le=10),
) -> Prediction:
    """The top-k classes of each image, by the trial's best model (its own normalization).
    Behind the API token when one is set: it spends this process's CPU."""
    if not PREDICTING.acquire(blocking=False):
        raise Busy(f"{MAX_CONCURRENT} predictions are running; try again in a moment")
    try:
        return _predict(t, images, top_k)
    finally:
        PREDICTING.release()


def _predict(t, images: list[UploadFile], top_k: int) -> Prediction:
    if len(images) > MAX_IMAGES:
        raise InputError(f"{len(images)} images: at most {MAX_IMAGES} per request")
    # Every upload is checked before the model is loaded: a bad request caches nothing.
    decoded = [decode(f.filename or f"image {i}", f.file.read()) for i, f in enumerate(images)]
    if not t.checkpoint_path:
        raise NotFound(f"trial {t.id} has no checkpoint yet")
    import numpy as np

    arrays = [np.asarray(img, np.uint8) for img in decoded]
    with local_model_file(t.checkpoint_path, t.id) as path:
        out = classify_in_worker((t.id, t.checkpoint_path), str(path), arrays, top_k)
    tops = out["tops"]
    return Prediction(
        trial_id=t.id,
        model=t.model,
        normalize=out["normalize"],
        classes=out["classes"],
        predictions=[
            ImagePrediction(file=f.filename or f"image {i}", top=[ClassProb(label=c, prob=p) for c, p in top])
            for i, (f, top) in enumerate(zip(images, tops, strict=True))
        ],
    )
