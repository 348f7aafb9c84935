"""Trials: config and curves, and the best model file."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import FileResponse

from cifar_sweeps.errors import Busy, ExportFailed, InputError, NotFound
from cifar_sweeps.service.routes.deps import Auth, State, TrialDep, checkpoint_url
from cifar_sweeps.service.schemas import ClassProb, EpochOut, ImagePrediction, Prediction, TrialOut, error_responses
from cifar_sweeps.store.artifacts import local_model_file
from cifar_sweeps.subprocs import run_torch
from cifar_sweeps.training.predict import MAX_CONCURRENT, MAX_IMAGES, ModelCache, classify, decode

router = APIRouter(prefix="/trials", tags=["trials"])
MODELS = ModelCache()  # loaded models, shared by the requests of this process
PREDICTING = threading.BoundedSemaphore(MAX_CONCURRENT)
EXPORT_TIMEOUT_S = 300  # a ResNet-50's ONNX export takes tens of seconds on 2 cores


@router.get("/{trial_id}", response_model=TrialOut, responses=error_responses(404))
def get_trial(t: TrialDep, request: Request, state: State) -> TrialOut:
    out = TrialOut.model_validate(t)
    out.error = state.settings.redact(out.error)
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
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The exported model file"},
        **error_responses(404, 422, 503),
    },
)
def export(t: TrialDep, format: Literal["onnx", "torchscript"] = Query("onnx")):  # noqa: A002
    """The trial's best model as ONNX or TorchScript: float32 NCHW images in [0, 1] at the
    size it was trained at in, logits out, its input statistics inside; its class names,
    config and scores in the file's metadata. Made in a process of its own, one at a time."""
    if not t.checkpoint_path:
        raise NotFound(f"trial {t.id} has no checkpoint yet")
    path = _export(t, format)
    from starlette.background import BackgroundTask

    return FileResponse(
        path,
        filename=f"{t.id}{path.suffix}",
        media_type="application/octet-stream",
        background=BackgroundTask(shutil.rmtree, path.parent, ignore_errors=True),
    )


def _export(t, fmt: str) -> Path:
    """Run export.py on the trial's model file in a child process (the API loads no torch);
    the child names the file (model.onnx, model.pt) in a folder of its own."""
    out_dir = Path(tempfile.mkdtemp(prefix="cifar-sweeps-export-"))
    try:
        with local_model_file(t.checkpoint_path, t.id) as model_file:
            args = [str(model_file), str(out_dir), fmt, t.id]
            p = run_torch("cifar_sweeps.training.export", args, EXPORT_TIMEOUT_S, f"the export of trial {t.id}")
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    out = next(out_dir.glob("model.*"), None)
    if p.returncode != 0 or out is None:
        shutil.rmtree(out_dir, ignore_errors=True)
        last = (p.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise ExportFailed(f"the export of trial {t.id} to {fmt} failed: {last}")
    return out


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
    mf = MODELS.get((t.id, t.checkpoint_path), lambda: _load(t))
    tops = classify(mf, decoded, top_k)
    return Prediction(
        trial_id=t.id,
        model=t.model,
        normalize=mf.normalize,
        classes=list(mf.classes),
        predictions=[
            ImagePrediction(file=f.filename or f"image {i}", top=[ClassProb(label=c, prob=p) for c, p in top])
            for i, (f, top) in enumerate(zip(images, tops, strict=True))
        ],
    )


def _load(t):
    """The trial's model file, read (a remote one fetched once, then cached)."""
    from cifar_sweeps.training.train import read_model_file

    with local_model_file(t.checkpoint_path, t.id) as path:
        return read_model_file(path)
