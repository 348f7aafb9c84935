"""Trials: config and curves, and the best model file."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import FileResponse

from cifar_sweeps.errors import Busy, InputError, NotFound
from cifar_sweeps.predict import MAX_CONCURRENT, MAX_IMAGES, ModelCache, classify, decode
from cifar_sweeps.routes.deps import Auth, State, TrialDep, checkpoint_url
from cifar_sweeps.schemas import ClassProb, EpochOut, ImagePrediction, Prediction, TrialOut, error_responses

router = APIRouter(prefix="/trials", tags=["trials"])
MODELS = ModelCache()  # loaded models, shared by the requests of this process
PREDICTING = threading.BoundedSemaphore(MAX_CONCURRENT)


@router.get("/{trial_id}", response_model=TrialOut, responses=error_responses(404))
def get_trial(t: TrialDep, request: Request, state: State) -> TrialOut:
    out = TrialOut.model_validate(t)
    out.checkpoint_url = checkpoint_url(request, t)
    out.curves = [EpochOut.model_validate(e) for e in state.store.epochs(t.id)]
    return out


@router.get(
    "/{trial_id}/checkpoint",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The best model file"},
        **error_responses(404),
    },
)
def checkpoint(t: TrialDep):
    from cifar_sweeps.storage import open_checkpoint

    if not t.checkpoint_path:
        raise NotFound(f"trial {t.id} has no checkpoint yet")
    try:
        return open_checkpoint(t.checkpoint_path, f"{t.id}.pt")
    except FileNotFoundError:
        raise NotFound(f"the checkpoint file of trial {t.id} is gone from storage") from None


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
    model, normalize = MODELS.get((t.id, t.checkpoint_path), lambda: _load(t))
    tops = classify(model, normalize, decoded, top_k)
    return Prediction(
        trial_id=t.id,
        model=t.model,
        normalize=normalize,
        predictions=[
            ImagePrediction(file=f.filename or f"image {i}", top=[ClassProb(label=c, prob=p) for c, p in top])
            for i, (f, top) in enumerate(zip(images, tops, strict=True))
        ],
    )


def _load(t):
    """The trial's model and normalization, from its model file (a local path or a URI)."""
    import tempfile
    from pathlib import Path

    from cifar_sweeps.storage import open_checkpoint
    from cifar_sweeps.train import load_model_blob

    path = t.checkpoint_path
    try:
        if "://" not in path or path.startswith("file://"):
            return load_model_blob(open_checkpoint(path, "model.pt").path)
        with tempfile.TemporaryDirectory() as d:  # a remote (s3://...) file: fetched once, then cached
            local = Path(d, "model.pt")
            local.write_bytes(open_checkpoint(path, "model.pt").body)
            return load_model_blob(local)
    except FileNotFoundError:
        raise NotFound(f"the checkpoint file of trial {t.id} is gone from storage") from None
