"""Pretrained weights: fetch, import, list, and load once per sweep.

Weights are staged in one folder (CIFAR_SWEEPS_WEIGHTS_DIR), one file per model, as a plain
state dict. The sweep's driver loads them once and hands them to every trial through the Ray
object store, as it does the data: trials, and the worker nodes they run on, need neither a
copy of the file nor the network. A file is checked against the model's own state dict
(keys, shapes, dtypes) before it is staged, so a wrong file is refused with its reason
instead of failing inside every trial.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cifar_sweeps.errors import WeightsError
from cifar_sweeps.sweepspec.config import STAGE_HINT

if TYPE_CHECKING:  # torch loads only where weights are read or written (not in the API)
    import torch

# Models with staged ImageNet weights, and torchvision's source for `fetch` (the report's
# `resnet50(pretrained=True)` loaded IMAGENET1K_V1).
SOURCES = {"resnet50": "IMAGENET1K_V1"}


@dataclass(frozen=True)
class Staged:
    name: str
    path: Path
    size_mb: float
    backbone_sha256: str


def staged_path(name: str, weights_dir: Path) -> Path:
    return Path(weights_dir).expanduser() / f"{name}-imagenet.pt"


def _known(name: str) -> None:
    if name not in SOURCES:
        raise WeightsError(f"no pretrained weights for model {name!r}; known: {', '.join(SOURCES)}")


def reference_state(name: str) -> dict[str, torch.Tensor]:
    """The state dict an ImageNet file for `name` must match (torchvision's own model)."""
    import torchvision

    _known(name)
    return torchvision.models.resnet50(weights=None).state_dict()


def _list_some(keys, n: int = 4) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def check_state(name: str, state: object, origin: str) -> dict[str, torch.Tensor]:
    """`state` as a state dict of `name`'s ImageNet model, or WeightsError naming what is wrong."""
    import torch

    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a checkpoint that wraps its state dict
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{origin} is not a state dict (a mapping of names to tensors)")
    ref = reference_state(name)
    missing, extra = set(ref) - set(state), set(state) - set(ref)
    if missing or extra:
        raise WeightsError(
            f"{origin} is not a {name} ImageNet state dict: "
            + "; ".join(
                filter(
                    None,
                    [
                        missing and f"missing keys {_list_some(missing)}",
                        extra and f"unexpected keys {_list_some(extra)}",
                    ],
                )
            )
        )
    for k, v in ref.items():
        if state[k].shape != v.shape:
            raise WeightsError(
                f"{origin}: {k} has shape {tuple(state[k].shape)}, a {name} ImageNet state dict has {tuple(v.shape)}"
            )
        if state[k].dtype != v.dtype:
            raise WeightsError(f"{origin}: {k} is {state[k].dtype}, expected {v.dtype}")
    return state


def _read(path: Path) -> object:
    import torch

    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist")
    try:
        # weights_only: a weights file is data; it never gets to run pickled code here.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        detail = str(e).splitlines()[0][:160] if str(e) else "no detail"
        raise WeightsError(
            f"{path} can't be read as a PyTorch weights file (truncated, or not weights at "
            f"all?): {type(e).__name__}: {detail}"
        ) from None


def _stage(name: str, state: dict[str, torch.Tensor], weights_dir: Path) -> Path:
    """Write atomically: a crash mid-write never leaves a half file that looks staged."""
    import torch

    dest = staged_path(name, weights_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{name}-", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def import_weights(name: str, file: str | Path, weights_dir: Path) -> Staged:
    """Stage a file (offline clusters): refused unless it is `name`'s ImageNet state dict."""
    _known(name)
    path = Path(file).expanduser()
    state = check_state(name, _read(path), str(path))
    return _describe(name, _stage(name, state, weights_dir), state)


def fetch_weights(name: str, weights_dir: Path, progress: bool = True) -> Staged:
    """Download through torchvision (which checks the file's published hash), then stage."""
    import torch
    import torchvision

    _known(name)
    weights = torchvision.models.ResNet50_Weights[SOURCES[name]]
    with tempfile.TemporaryDirectory(dir=_mkdir(weights_dir)) as d:
        try:
            state = torch.hub.load_state_dict_from_url(
                weights.url, model_dir=d, progress=progress, check_hash=True, map_location="cpu"
            )
        except Exception as e:
            raise WeightsError(
                f"downloading {weights.url} failed ({type(e).__name__}: {e}); on a machine "
                f"without internet, copy the file over and run `cifar-sweeps weights import "
                f"{name} FILE`"
            ) from None
        state = check_state(name, state, weights.url)
        return _describe(name, _stage(name, state, weights_dir), state)


def _mkdir(d: Path) -> Path:
    d = Path(d).expanduser()
    d.mkdir(parents=True, exist_ok=True)
    return d


def _describe(name: str, path: Path, state: dict[str, torch.Tensor]) -> Staged:
    from cifar_sweeps.training.models import backbone_sha256

    return Staged(name, path, path.stat().st_size / 2**20, backbone_sha256(state))


def list_weights(weights_dir: Path) -> list[Staged]:
    out = []
    for name in SOURCES:
        path = staged_path(name, weights_dir)
        if path.is_file():
            out.append(_describe(name, path, load_staged(name, weights_dir)))
    return out


def load_staged(name: str, weights_dir: Path) -> dict[str, torch.Tensor]:
    """The staged state dict of `name`, or WeightsError naming where it was looked for and
    the two commands that stage it."""
    _known(name)
    path = staged_path(name, weights_dir)
    if not path.is_file():
        raise WeightsError(
            f"{name} ImageNet weights are needed (pretrained: true) but none are staged at {path}; {STAGE_HINT}"
        )
    return check_state(name, _read(path), str(path))


def load_for(models: set[str], weights_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Every model's staged weights, loaded once (the driver hands them to all trials)."""
    return {name: load_staged(name, weights_dir) for name in sorted(models)}


def check_staged(models: set[str], weights_dir: Path) -> None:
    """Cheap check at submit: the files exist (their contents were checked when staged)."""
    for name in sorted(models):
        _known(name)
        if not staged_path(name, weights_dir).is_file():
            raise WeightsError(
                f"{name} ImageNet weights are needed (pretrained: true) but none are staged at "
                f"{staged_path(name, weights_dir)}; {STAGE_HINT}"
            )
