"""The training config: one pydantic model of everything that defines one training run,
and the names it may take. Free of torch, so that the API process and the spec checks can
validate configs without loading it (registry.py names the models, the zoo's and installed
plug-ins'; models.py builds them; a test keeps the two in step)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, field_validator, model_validator

from cifar_sweeps import registry
from cifar_sweeps.registry import (  # noqa: F401 (re-exported: the zoo's names live with the registry)
    ARG_RE,
    MLP_MODELS,
    MODEL_NAMES,
    PRETRAINABLE,
    SCALABLE,
)

ACTIVATIONS: tuple[str, ...] = ("relu", "leaky_relu", "sigmoid", "elu", "silu")
STAGE_HINT = (
    "stage them with `cifar-sweeps weights fetch resnet50` (downloads) or "
    "`cifar-sweeps weights import resnet50 FILE` (offline)"
)

MODEL_ARG = "model_args."  # the prefix of a searched model argument

OptimizerName = Literal["sgd", "adagrad", "adadelta", "adam", "adamw"]
SchedulerName = Literal["none", "exponential", "step", "cosine", "onecycle"]
# Input statistics (loader.NORMALIZATIONS): auto is CIFAR-10's on data of CIFAR-10's classes,
# else the training split's own (dataset); the report used "report" (0.5, 0.5).
NormalizeName = Literal["auto", "cifar", "report", "imagenet", "dataset"]
OPTIMIZERS: tuple[str, ...] = OptimizerName.__args__  # type: ignore[attr-defined]
SCHEDULERS: tuple[str, ...] = SchedulerName.__args__  # type: ignore[attr-defined]


class TrainConfig(BaseModel):
    """Everything that defines one training run; the defaults are the report's course code."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # 1e400 is no learning rate

    model: str = "simple_cnn"
    # A plug-in model's own arguments (registry.py): `build(num_classes=..., **model_args)`.
    # In a spec, `fixed.model_args` or a searched `params["model_args.NAME"]`.
    model_args: dict[str, StrictBool | StrictInt | StrictFloat | str] = Field(default_factory=dict, max_length=64)
    activation: str = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    pretrained: bool = False  # ImageNet weights for the backbone (resnet50; see weights.py)
    width: float = Field(1.0, ge=0.125, le=4.0)  # channel multiplier of a SCALABLE net
    depth: int = Field(1, ge=1, le=4)  # conv layers after each block's pool in a SCALABLE net
    normalize: NormalizeName = "auto"  # input statistics (see NormalizeName)
    optimizer: OptimizerName = "sgd"
    lr: float = Field(0.02, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # sgd only
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0.0)
    scheduler: SchedulerName = "none"
    gamma: float = Field(0.95, gt=0.0, le=1.0)  # exponential / step decay factor per epoch/step
    step_size: int = Field(10, gt=0)  # epochs between step-scheduler decays
    batch_size: int = Field(32, gt=0, le=65536)
    epochs: int = Field(10, gt=0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    flip: bool = True
    crop_padding: int = Field(0, ge=0, le=16)
    cutout: int = Field(0, ge=0, le=32)
    tta: bool = False  # evaluate on image + its mirror, averaging logits
    seed: int = 0
    device: str = "auto"  # auto: cuda when available
    amp: bool = True  # bf16 autocast on CUDA
    channels_last: bool = True  # NHWC activations for conv nets (faster on CUDA and on x86 CPUs)
    threads: int | None = Field(None, gt=0)  # torch intra-op threads on CPU
    eval_batch_size: int = Field(1024, gt=0, le=65536)
    test_on_best: bool = True  # evaluate test each time val improves (so test_acc is of the best)

    @model_validator(mode="before")
    @classmethod
    def _fold_model_args(cls, raw: Any) -> Any:
        """`model_args.NAME` keys (a searched model argument, flat as Tune sees it) fold
        into `model_args`."""
        if not isinstance(raw, dict) or not any(isinstance(k, str) and k.startswith(MODEL_ARG) for k in raw):
            return raw
        raw = dict(raw)
        args = dict(raw.get("model_args") or {})
        for k in [k for k in raw if isinstance(k, str) and k.startswith(MODEL_ARG)]:
            args[k.removeprefix(MODEL_ARG)] = raw.pop(k)
        raw["model_args"] = args
        return raw

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        if v not in registry.ZOO and v not in registry.plugins():
            raise ValueError(registry.unknown_model_message(v))
        return v

    @field_validator("model_args")
    @classmethod
    def _arg_names(cls, v: dict) -> dict:
        bad = next((k for k in v if not ARG_RE.match(k)), None)
        if bad is not None:
            raise ValueError(f"model_args: {bad[:64]!r} is no argument name (letters, digits, '_')")
        return v

    @model_validator(mode="after")
    def _args_for_plugins(self):
        if self.model_args and self.model in MODEL_NAMES:
            raise ValueError(
                f"model_args: model {self.model!r} is one of the zoo's, which take no model_args (their "
                "shape is set by width, depth, activation and dropout); model_args go to plug-in models"
            )
        return self

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, v: str) -> str:
        if v not in ACTIVATIONS:
            raise ValueError(f"unknown activation {v!r}; known: {', '.join(ACTIVATIONS)}")
        return v

    @property
    def augment(self):
        from cifar_sweeps.loader import Augment

        return Augment(self.flip, self.crop_padding, self.cutout)
