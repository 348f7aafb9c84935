"""The model registry: every model a spec may name, the zoo's and installed plug-ins'.

A plug-in is an installed package that registers a builder under the entry-point group
`cifar_sweeps.models` (pyproject.toml):

    [project.entry-points."cifar_sweeps.models"]
    tiny_convnet = "my_package.nets:build"

The service calls `build(num_classes=N, **model_args)` and gets an `nn.Module` taking float
NCHW images. Listing reads package metadata only: no plug-in code is imported and no torch
is loaded, so the API process checks names without running anything. A spec names a
registered model, never a module path: code runs only if whoever runs the cluster installed
its package. The zoo (models.py) is built in, so a checkout run from its folder, with no
package metadata at all, still has every model.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

from pydantic import BaseModel


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo: what a spec and the API know of it (its builder is models.py's,
    under the same name; a test holds the two lists equal)."""

    name: str
    mlp: bool = False  # one of the report's MLPs
    fixed_size_32: bool = False  # its layers assume 32x32 inputs (a fixed flatten size); else any size
    scalable: bool = False  # its width and depth are trial parameters
    pretrainable: bool = False  # it has ImageNet weights (weights.py)


_MLP = {"mlp": True, "fixed_size_32": True}
# The model zoo (models.py): the report's MLPs and CNNs, then three nets that pool globally.
ZOO_MODELS: dict[str, ZooModel] = {
    m.name: m
    for m in (
        ZooModel("mlp", **_MLP),
        ZooModel("relu_layer_div2", **_MLP),
        ZooModel("relu_layer_div4", **_MLP),
        ZooModel("relu_div4_div2", **_MLP),
        ZooModel("relu_6_layer_divrand", **_MLP),
        ZooModel("relu_4_layer_divrand", **_MLP),
        ZooModel("default_conv", fixed_size_32=True),
        ZooModel("simple_cnn", fixed_size_32=True),
        ZooModel("simple_cnn_arq_2", fixed_size_32=True),
        ZooModel("simple_cnn_arq_4", fixed_size_32=True),
        ZooModel("resnet50", pretrainable=True),
        ZooModel("resnet18"),
        ZooModel("airbench", scalable=True),
    )
}
MLP_MODELS = tuple(m.name for m in ZOO_MODELS.values() if m.mlp)
MODEL_NAMES: tuple[str, ...] = tuple(ZOO_MODELS)
PRETRAINABLE = frozenset(m.name for m in ZOO_MODELS.values() if m.pretrainable)
SCALABLE = frozenset(m.name for m in ZOO_MODELS.values() if m.scalable)
FIXED_SIZE_32 = frozenset(m.name for m in ZOO_MODELS.values() if m.fixed_size_32)

GROUP = "cifar_sweeps.models"
ZOO_SOURCE = "cifar-sweeps"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ARG_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Entry points are read again after this long (seconds): a package installed while the
# service runs shows up without a restart, and a spec's thousands of configs cost one scan.
RESCAN_S = 5.0


class ModelInfo(BaseModel):
    """One model a spec may name (GET /models, `cifar-sweeps models`)."""

    name: str
    kind: Literal["zoo", "plugin"]
    source: str  # the package that provides it: cifar-sweeps for the zoo, else the plug-in's distribution
    version: str | None = None  # the plug-in distribution's version
    target: str | None = None  # "module:attribute" of its builder (the CLI's list; never in an HTTP answer)
    image_size: int | None = None  # the only input size it takes; None: any size
    args: dict[str, Any] | None = None  # declared model_args (plug-ins that declare them), else None
    notes: str = ""


def _zoo() -> dict[str, ModelInfo]:
    notes = {
        **{m: "width, depth: searchable" for m in SCALABLE},
        **{m: "pretrained: ImageNet weights" for m in PRETRAINABLE},
    }
    return {
        name: ModelInfo(
            name=name,
            kind="zoo",
            source=ZOO_SOURCE,
            target="cifar_sweeps.training.models:build_zoo_model",
            image_size=32 if name in FIXED_SIZE_32 else None,
            notes=notes.get(name, ""),
        )
        for name in MODEL_NAMES
    }


ZOO = _zoo()
_scan: tuple[float, dict[str, ModelInfo]] = (-1e9, {})


def plugins() -> dict[str, ModelInfo]:
    """The installed plug-ins, by name (re-read every RESCAN_S). A plug-in named like a zoo
    model, or with a name a spec can't carry, is left out: the zoo's names stay what they are."""
    global _scan
    now = time.monotonic()
    if now - _scan[0] < RESCAN_S:
        return _scan[1]
    found: dict[str, ModelInfo] = {}
    for ep in metadata.entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        if ep.name in ZOO or not NAME_RE.match(ep.name) or ep.name in found:
            continue
        found[ep.name] = ModelInfo(
            name=ep.name,
            kind="plugin",
            source=dist.metadata["Name"] if dist is not None else "unknown",
            version=dist.version if dist is not None else None,
            target=ep.value,
        )
    _scan = (now, found)
    return found


def rescan() -> None:
    """Forget the last scan (after installing a package in this process)."""
    global _scan
    _scan = (-1e9, {})


def models() -> dict[str, ModelInfo]:
    return {**ZOO, **plugins()}


def names() -> tuple[str, ...]:
    return (*ZOO, *sorted(plugins()))


def is_plugin(name: str) -> bool:
    return name not in ZOO and name in plugins()


def looks_like_a_path(name: str) -> bool:
    """A module path or file rather than a model name: never built from a request."""
    return ":" in name or "/" in name or "\\" in name or name.endswith(".py")


def unknown_model_message(name: str) -> str:
    if looks_like_a_path(name):
        return (
            f"{name!r} is a module path; a spec names a registered model, never code. Register your builder "
            f'under the entry-point group "{GROUP}" of an installed package (docs/your-model.md); known: '
            f"{', '.join(names())}"
        )
    return f"unknown model {name!r}; known: {', '.join(names())} (your own: docs/your-model.md)"


def load_builder(name: str):
    """The builder of a plug-in (imports its module: the training side only)."""
    for ep in metadata.entry_points(group=GROUP):
        if ep.name == name:
            return ep.load()
    raise KeyError(name)
