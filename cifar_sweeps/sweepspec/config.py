"""The training config: one pydantic model of everything that defines one training run,
and the names it may take. Free of torch, so that the API process and the spec checks can
validate configs without loading it (registry.py names the models, the zoo's and installed
plug-ins'; models.py builds them; a test keeps the two in step)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cifar_sweeps.sweepspec import registry
from cifar_sweeps.sweepspec.registry import (  # noqa: F401 (re-exported: the zoo's names live with the registry)
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
MAX_ARG_CHARS = 256  # a model argument's string: a name or a mode, never a payload
RESERVED_ARGS = frozenset({"num_classes"})  # what the service passes a builder itself

OptimizerName = Literal["sgd", "adagrad", "adadelta", "adam", "adamw"]
# linear: airbench's, a linear warm-up from 0.2 lr to lr over the first 23 % of the steps, then
# a linear decay to 0.07 lr; onecycle and linear step every batch, the rest every epoch.
LrScheduleName = Literal["none", "exponential", "step", "cosine", "onecycle", "linear"]
# auto: bf16 autocast where the hardware runs it fast (CUDA; a CPU with AMX or AVX512_BF16),
# fp32 elsewhere (an emulated bf16 is slower than fp32); see precision.py.
PrecisionName = Literal["auto", "fp32", "bf16"]
# Input statistics (loader.NORMALIZATIONS): auto is CIFAR-10's on data of CIFAR-10's classes,
# else the training split's own (dataset); the report used "report" (0.5, 0.5).
NormalizeName = Literal["auto", "cifar", "report", "imagenet", "dataset"]
PRECISIONS: tuple[str, ...] = PrecisionName.__args__  # type: ignore[attr-defined]
OPTIMIZERS: tuple[str, ...] = OptimizerName.__args__  # type: ignore[attr-defined]
LR_SCHEDULES: tuple[str, ...] = LrScheduleName.__args__  # type: ignore[attr-defined]


# Learning-rate schedules whose every step depends on the run's length (train.make_lr_schedule):
# a refit trains their full length, a continuation starts them anew.
LENGTH_SHAPED = frozenset({"onecycle", "linear", "cosine"})
# What population-based training may change in the middle of a run (Trainer.retune): the
# optimizer's lr and weight decay in place, the loss's label smoothing. Not the batch size
# (the schedule counts its steps), nor anything that shapes the net.
PBT_MUTABLE = ("lr", "weight_decay", "label_smoothing")


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
    lr_schedule: LrScheduleName = "none"  # the learning-rate schedule (`scheduler` before it)
    gamma: float = Field(0.95, gt=0.0, le=1.0)  # exponential / step decay factor per epoch/step
    step_size: int = Field(10, gt=0)  # epochs between step-scheduler decays
    batch_size: int = Field(32, gt=0, le=65536)
    epochs: int = Field(10, gt=0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    flip: bool = True
    crop_padding: int = Field(0, ge=0, le=16)
    cutout: int = Field(0, ge=0, le=32)
    # Test-time augmentation: 0 none, 1 image + mirror (2 views), 2 also the 1-pixel
    # translations up-left and down-right, each mirrored (6 views). true/false read as 1/0.
    tta: int = Field(0, ge=0, le=2)
    alternate_flip: bool = False  # with flip: each image mirrored every other epoch, from a random start
    # airbench's method (KellerJordan/cifar10-airbench; docs/performance.md):
    whiten: bool = False  # airbench: a frozen 2x2 patch-whitening first layer, fitted to the trial's images
    whiten_bias_epochs: int = Field(3, ge=0, le=1000)  # epochs the whitening layer's bias trains, then frozen
    dirac: bool = False  # airbench: the 3x3 convs start as the identity on their first input-width filters
    bn_bias_lr: float = Field(1.0, gt=0.0, le=1000.0)  # lr multiplier of BatchNorm biases (airbench: 64)
    # The weight of each batch in BatchNorm's running statistics (PyTorch's convention; its
    # default is 0.1, airbench's 0.4). None: the model's own.
    bn_momentum: float | None = Field(None, gt=0.0, le=1.0)
    # BatchNorm's scale stays 1 (airbench): with it trained, the high lr of the method makes
    # the running statistics lag the weights, and validation collapses mid-run.
    freeze_bn_weight: bool = False
    lookahead: bool = False  # airbench's lookahead: every 5 steps, pull the weights to an EMA of them
    seed: int = 0
    device: str = "auto"  # auto: cuda when available
    precision: PrecisionName = "auto"  # (`amp` before it: true is auto, false is fp32)
    channels_last: bool = True  # NHWC activations for conv nets (faster on CUDA and on x86 CPUs)
    threads: int | None = Field(None, gt=0)  # torch intra-op threads on CPU
    # torch.compile the net for its training steps (on CUDA with CUDA graphs: a deep net on
    # 32x32 images at a small batch is bound by kernel launches, not by the card). Costs a
    # compile of about a minute per trial: for long runs of deep nets, not short ones.
    compile: bool = False
    eval_batch_size: int = Field(1024, gt=0, le=65536)
    test_on_best: bool = True  # test_acc: of the best-val weights (a trial tests them at rungs and its end)

    @model_validator(mode="before")
    @classmethod
    def _read_old_names(cls, raw: Any) -> Any:
        return read_old_names(raw) if isinstance(raw, dict) else raw

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
        taken = next((k for k in v if k in RESERVED_ARGS or k.startswith("_")), None)
        if taken is not None:
            raise ValueError(
                f"model_args.{taken}: the service sets this argument itself (or it is private); choose another name"
            )
        long = next((k for k, x in v.items() if isinstance(x, str) and len(x) > MAX_ARG_CHARS), None)
        if long is not None:
            raise ValueError(f"model_args.{long}: a string of {len(v[long])} characters; at most {MAX_ARG_CHARS}")
        return v

    @model_validator(mode="after")
    def _args_for_plugins(self):
        if self.model_args and self.model in MODEL_NAMES:
            raise ValueError(
                f"model_args: model {self.model!r} is one of the zoo's, which take no model_args (their "
                "shape is set by width, depth, activation and dropout); model_args go to plug-in models"
            )
        return self

    @model_validator(mode="after")
    def _method_fits_model(self, info: ValidationInfo):
        if info.context and info.context.get("field_alone"):  # a spec's field, whose model is set elsewhere
            return self
        misfit = inapplicable(self.model, self.model_dump(exclude_defaults=True))
        if misfit is not None:
            raise ValueError(misfit[1])
        return self

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, v: str) -> str:
        if v not in ACTIVATIONS:
            raise ValueError(f"unknown activation {v!r}; known: {', '.join(ACTIVATIONS)}")
        return v


# Old field names, still read in specs, stored trials, warm starts and resumes: old -> new.
OLD_NAMES: dict[str, str] = {"amp": "precision", "scheduler": "lr_schedule"}


def read_old_names(raw: dict[str, Any]) -> dict[str, Any]:
    """A config with its old names as the new fields: `scheduler` is `lr_schedule`; `amp`
    true is precision auto (reduced precision where it is fast) and false fp32; `tta`
    true/false is level 1/0 (image + mirror / none)."""
    if not any(k in raw for k in OLD_NAMES) and not isinstance(raw.get("tta"), bool):
        return raw
    raw = dict(raw)
    for old, new in OLD_NAMES.items():
        if old not in raw:
            continue
        if new in raw:
            raise ValueError(f"{old}: the old name of {new}, which is given too; keep {new}")
        value = raw.pop(old)
        if old == "amp":
            if not isinstance(value, bool):
                raise ValueError(f"amp: {value!r} is not true or false (amp is the old name of precision)")
            value = "auto" if value else "fp32"
        raw[new] = value
    if isinstance(raw.get("tta"), bool):
        raw["tta"] = int(raw["tta"])
    return raw


# The fields of airbench's method that only some models have the layers for.
WHITENABLE = frozenset({"airbench"})  # a stem that the whitening layer replaces; 3x3 convs for dirac
WITH_BATCHNORM = frozenset({"airbench", "resnet18", "resnet50"})  # zoo models with BatchNorm
METHOD_MODELS: dict[str, frozenset[str]] = {
    "whiten": WHITENABLE,
    "dirac": WHITENABLE,
    "bn_bias_lr": WITH_BATCHNORM,
    "bn_momentum": WITH_BATCHNORM,
    "freeze_bn_weight": WITH_BATCHNORM,
}
METHOD_DEFAULTS: dict[str, Any] = {
    "whiten": False,
    "dirac": False,
    "bn_bias_lr": 1.0,
    "bn_momentum": None,
    "freeze_bn_weight": False,
}
BN_FIELDS = frozenset({"bn_bias_lr", "bn_momentum", "freeze_bn_weight"})


def inapplicable(model: str, cfg: dict[str, Any]) -> tuple[str, str] | None:
    """(field, why) for the first method field set away from its default on a zoo model that
    lacks the layers it acts on, else None. Plug-ins are not refused: bn_* act on whatever
    BatchNorm layers they have, and whiten/dirac are the zoo's airbench's only."""
    for field, models in METHOD_MODELS.items():
        if cfg.get(field, METHOD_DEFAULTS[field]) == METHOD_DEFAULTS[field] or model in models:
            continue
        if field in BN_FIELDS and model not in registry.ZOO:
            continue
        return field, (
            f"{field} applies to {', '.join(sorted(models))} only (the models with the layers it acts on), "
            f"not to model {model!r}"
        )
    return None
