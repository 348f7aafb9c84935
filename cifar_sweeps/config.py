"""The training config: one pydantic model of everything that defines one training run,
and the names it may take. Free of torch, so that the API process and the spec checks can
validate configs without loading it (models.py builds what these names name; a test keeps
the two in step)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The model zoo (models.py): the report's MLPs and CNNs, then two fast nets.
MLP_MODELS = (
    "mlp",
    "relu_layer_div2",
    "relu_layer_div4",
    "relu_div4_div2",
    "relu_6_layer_divrand",
    "relu_4_layer_divrand",
)
MODEL_NAMES: tuple[str, ...] = (
    *MLP_MODELS,
    "default_conv",
    "simple_cnn",
    "simple_cnn_arq_2",
    "simple_cnn_arq_4",
    "resnet50",
    "resnet18",
    "airbench",
)
ACTIVATIONS: tuple[str, ...] = ("relu", "leaky_relu", "sigmoid", "elu", "silu")
PRETRAINABLE = frozenset({"resnet50"})  # models with ImageNet weights (weights.py)
SCALABLE = frozenset({"airbench"})  # models whose width and depth are trial parameters
STAGE_HINT = (
    "stage them with `cifar-sweeps weights fetch resnet50` (downloads) or "
    "`cifar-sweeps weights import resnet50 FILE` (offline)"
)

OptimizerName = Literal["sgd", "adagrad", "adadelta", "adam", "adamw"]
SchedulerName = Literal["none", "exponential", "step", "cosine", "onecycle"]
NormalizeName = Literal["cifar", "report", "imagenet"]  # see loader.NORMALIZATIONS
OPTIMIZERS: tuple[str, ...] = OptimizerName.__args__  # type: ignore[attr-defined]
SCHEDULERS: tuple[str, ...] = SchedulerName.__args__  # type: ignore[attr-defined]


class TrainConfig(BaseModel):
    """Everything that defines one training run; the defaults are the report's course code."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # 1e400 is no learning rate

    model: str = "simple_cnn"
    activation: str = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    pretrained: bool = False  # ImageNet weights for the backbone (resnet50; see weights.py)
    width: float = Field(1.0, ge=0.125, le=4.0)  # channel multiplier of a SCALABLE net
    depth: int = Field(1, ge=1, le=4)  # conv layers after each block's pool in a SCALABLE net
    normalize: NormalizeName = "cifar"  # input statistics; the report used "report" (0.5, 0.5)
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

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        if v not in MODEL_NAMES:
            raise ValueError(f"unknown model {v!r}; known: {', '.join(MODEL_NAMES)}")
        return v

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
