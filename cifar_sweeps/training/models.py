"""The model zoo: every architecture the report names, plus two fast CIFAR nets.

Activation and dropout apply to the non-convolutional (fully connected) layers only, as in
the report; convolutional layers keep ReLU (report nets) or GELU (fast net).

Choices where the report leaves a detail open (widths are the Linear layers' sizes, input
3*32*32 = 3072):
- mlp: the course default, 3072-512-512-10.
- relu_layer_div2: halve until the next halving would pass 10: 3072-1536-...-12-10.
- relu_layer_div4: quarter likewise: 3072-768-192-48-12-10.
- relu_div4_div2: alternate /4 and /2: 3072-768-384-96-48-12-10.
- relu_6_layer_divrand: six Linear layers, arbitrary sizes: 3072-1000-600-250-100-40-10.
- relu_4_layer_divrand: four Linear layers, arbitrary sizes: 3072-900-300-60-10.
- default_conv: the PyTorch tutorial net (conv 6@5x5, pool, conv 16@5x5, pool, 400-120-84-10).
- simple_cnn: conv 32@3x3 p1, pool, conv 64@3x3 p1, pool, 4096-512-10 (the report's 64*8*8
  input to its FC layers implies the second pooling).
- simple_cnn_arq_2 / simple_cnn_arq_4: the same convs, FC halving / quartering 4096 -> 10.
- resnet50: torchvision ResNet-50 on 32x32 input (the report did not resize), fc head
  2048-1024-256-64-16-10; with pretrained=True the backbone starts from ImageNet weights
  that the caller staged and loaded (weights.py).
- resnet18: the CIFAR ResNet-18 (3x3 stem, no max-pool), 512-10 head.
- airbench: a small fast net after KellerJordan/cifar10-airbench: a 3x3 stem, then three
  conv-pool-BN-GELU blocks (64, 256, 256 channels at width 1), global max-pool, a scaled
  bias-free linear head. `width` multiplies every conv's channels (rounded to a multiple of
  16, the lanes of one AVX-512 fp32 vector) and `depth` is the number of conv-BN-GELU
  layers after each block's pool (1: airbench94's shape, 2: airbench96's). Width 0.5 has a
  quarter of width 1's FLOPs, which is what makes it a CPU net (README: "The best model for
  your compute").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from cifar_sweeps.errors import ModelError
from cifar_sweeps.sweepspec.config import ACTIVATIONS as ACTIVATION_NAMES
from cifar_sweeps.sweepspec.config import MODEL_NAMES, PRETRAINABLE, SCALABLE, STAGE_HINT, WHITENABLE  # noqa: F401 (re-exported)

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}

IN_FEATURES = 3 * 32 * 32


def fc_stack(widths: Sequence[int], activation: str, dropout: float) -> nn.Sequential:
    """Linear layers through `widths`, with activation and dropout between them (not after
    the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=False)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def divide_widths(start: int, divisors: Sequence[int], end: int = 10) -> list[int]:
    """start, start/d0, start/d0/d1, ... cycling divisors while the next width stays > end."""
    widths = [start]
    i = 0
    while widths[-1] // divisors[i % len(divisors)] > end:
        widths.append(widths[-1] // divisors[i % len(divisors)])
        i += 1
    return widths + [end]


MLP_WIDTHS: dict[str, list[int]] = {
    "mlp": [IN_FEATURES, 512, 512, 10],
    "relu_layer_div2": divide_widths(IN_FEATURES, [2]),
    "relu_layer_div4": divide_widths(IN_FEATURES, [4]),
    "relu_div4_div2": divide_widths(IN_FEATURES, [4, 2]),
    "relu_6_layer_divrand": [IN_FEATURES, 1000, 600, 250, 100, 40, 10],
    "relu_4_layer_divrand": [IN_FEATURES, 900, 300, 60, 10],
}

SIMPLE_CNN_FC: dict[str, list[int]] = {
    "simple_cnn": [64 * 8 * 8, 512, 10],
    "simple_cnn_arq_2": divide_widths(64 * 8 * 8, [2]),
    "simple_cnn_arq_4": divide_widths(64 * 8 * 8, [4]),
}


class MLP(nn.Module):
    def __init__(self, widths: Sequence[int], activation: str, dropout: float):
        super().__init__()
        self.fc = fc_stack(widths, activation, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x, 1))


class ConvThenFC(nn.Module):
    def __init__(self, features: nn.Module, widths: Sequence[int], activation: str, dropout: float):
        super().__init__()
        self.features = features
        self.fc = fc_stack(widths, activation, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


def default_conv_features() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 6, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


def simple_cnn_features() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


def resnet50(
    activation: str, dropout: float, pretrained_state: dict[str, torch.Tensor] | None, num_classes: int = 10
) -> nn.Module:
    """torchvision's ResNet-50; with `pretrained_state` (its ImageNet state dict, 1000-way fc
    included) the backbone starts from those exact tensors. The head is always new."""
    import torchvision

    net = torchvision.models.resnet50(weights=None)
    if pretrained_state is not None:
        net.load_state_dict(pretrained_state)
    net.fc = fc_stack([net.fc.in_features, 1024, 256, 64, 16, num_classes], activation, dropout)
    return net


def backbone_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over a state dict's backbone tensors (every entry but the classifier head
    `fc.`), in key order: names the weights a pretrained model started from, equally for an
    ImageNet file (1000-way fc) and a model with the report's head."""
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(state.items()):
        if not k.startswith("fc."):
            h.update(k.encode())
            h.update(v.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, activation: str, dropout: float, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        layers, c = [], 64
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(c, width, stride), BasicBlock(width, width, 1)]
            c = width
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout) if dropout > 0 else nn.Identity(), nn.Linear(512, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU()]


AIRBENCH_WIDTHS = (32, 64, 256, 256)  # stem, then the three blocks, at width 1


def scaled_widths(width: float, base: Sequence[int] = AIRBENCH_WIDTHS) -> tuple[int, ...]:
    """Channels at a width multiplier: multiples of 16 (one AVX-512 fp32 vector), at least 16."""
    return tuple(max(16, round(c * width / 16) * 16) for c in base)


WHITEN_KERNEL = 2  # airbench's whitening patches: 2x2
WHITEN_WIDTH = 2 * 3 * WHITEN_KERNEL**2  # the patch covariance's 12 eigenvectors and their negatives


class AirbenchNet(nn.Module):
    """A stem, then three conv groups, each: conv, 2x2 max-pool, BN, GELU, then `depth`
    times conv, BN, GELU. The stem is a 3x3 conv, BN, GELU; with `whiten`, airbench's
    instead: a 2x2 conv (no padding, so 31x31 out) whose frozen weights airbench_method.py fits to
    the training images' patches, with a trained bias, then GELU."""

    def __init__(
        self,
        activation: str,
        dropout: float,
        width: float = 1.0,
        depth: int = 1,
        num_classes: int = 10,
        whiten: bool = False,
    ):
        super().__init__()
        stem, *widths = scaled_widths(width)
        if whiten:
            conv = nn.Conv2d(3, WHITEN_WIDTH, WHITEN_KERNEL, padding=0, bias=True)
            conv.weight.requires_grad_(False)  # set once from the data, never trained
            nn.init.zeros_(conv.bias)
            layers: list[nn.Module] = [conv, nn.GELU()]
            c = WHITEN_WIDTH
        else:
            layers = _conv_bn(3, stem)
            c = stem
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(w), nn.GELU()]
            for _ in range(depth):
                layers += _conv_bn(w, w)
            c = w
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(c, num_classes, bias=False)
        self.scale = 1 / 9  # airbench's logit temperature: keeps early logits small

    @property
    def whitening(self) -> nn.Conv2d | None:
        """The whitening layer, when the net has one."""
        first = self.features[0]
        return first if isinstance(first, nn.Conv2d) and first.kernel_size == (WHITEN_KERNEL,) * 2 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.amax(self.features(x), dim=(2, 3))
        return self.head(self.drop(x)) * self.scale


# A zoo builder: (activation, dropout, width, depth, num_classes) -> the net.
Builder = Callable[[str, float, float, int, int], nn.Module]


def _head(widths: Sequence[int], num_classes: int) -> list[int]:
    """The report's layer widths with the last one set to the data's number of classes."""
    return [*widths[:-1], num_classes]


def _builders() -> dict[str, Builder]:
    b: dict[str, Builder] = {}
    for name, widths in MLP_WIDTHS.items():
        b[name] = lambda a, d, wm, dp, n, w=widths: MLP(_head(w, n), a, d)
    b["default_conv"] = lambda a, d, wm, dp, n: ConvThenFC(default_conv_features(), [400, 120, 84, n], a, d)
    for name, widths in SIMPLE_CNN_FC.items():
        b[name] = lambda a, d, wm, dp, n, w=widths: ConvThenFC(simple_cnn_features(), _head(w, n), a, d)
    b["resnet50"] = lambda a, d, wm, dp, n: resnet50(a, d, None, n)  # pretrained: see build_model
    b["resnet18"] = lambda a, d, wm, dp, n: ResNet18(a, d, n)
    b["airbench"] = lambda a, d, wm, dp, n: AirbenchNet(a, d, wm, dp, n)
    return b


BUILDERS = _builders()
assert tuple(BUILDERS) == MODEL_NAMES and tuple(ACTIVATIONS) == ACTIVATION_NAMES, "config.py names the zoo"
MAX_CLASSES = 10_000


def build_model(
    name: str,
    activation: str = "relu",
    dropout: float = 0.0,
    pretrained: bool = False,
    pretrained_state: dict[str, torch.Tensor] | None = None,
    width: float = 1.0,
    depth: int = 1,
    num_classes: int = 10,
    model_args: dict[str, Any] | None = None,
    whiten: bool = False,
) -> nn.Module:
    """The zoo's models and installed plug-ins' (registry.py), built the one way a trial,
    `predict`, export and the submit-time check all use. `pretrained_state` is required with
    `pretrained`: the caller loads the staged weights once (weights.py), so building a model
    never touches the network or the disk. `width` and `depth` shape the scalable nets
    (SCALABLE) only; `model_args` go to a plug-in's builder; `whiten` gives airbench its
    whitening stem (config.WHITENABLE)."""
    if not 2 <= num_classes <= MAX_CLASSES:
        raise ModelError(f"num_classes must be in [2, {MAX_CLASSES}], got {num_classes}")
    if name not in BUILDERS:
        return build_plugin(name, num_classes, model_args or {})
    if model_args:
        raise ModelError(f"model {name!r} is one of the zoo's and takes no model_args (got {sorted(model_args)})")
    if activation not in ACTIVATIONS:
        raise ModelError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"dropout must be in [0, 1), got {dropout}")
    if pretrained and name not in PRETRAINABLE:
        raise ModelError(f"model {name!r} has no pretrained weights; only {sorted(PRETRAINABLE)}")
    if pretrained and pretrained_state is None:
        raise ModelError(f"model {name!r} with pretrained: true needs its ImageNet weights; {STAGE_HINT}")
    if (width, depth) != (1.0, 1) and name not in SCALABLE:
        raise ModelError(f"model {name!r} has a fixed shape; width and depth apply to {sorted(SCALABLE)}")
    if whiten and name not in WHITENABLE:
        raise ModelError(f"model {name!r} has no stem for a whitening layer; whiten applies to {sorted(WHITENABLE)}")
    if name == "resnet50":
        return resnet50(activation, dropout, pretrained_state if pretrained else None, num_classes)
    if whiten:
        return AirbenchNet(activation, dropout, width, depth, num_classes, whiten=True)
    return BUILDERS[name](activation, dropout, width, depth, num_classes)


# ---------------------------------------------------------------- plug-ins


def declared_args(builder) -> dict[str, dict[str, Any]] | None:
    """A plug-in builder's declared arguments (its `model_args` attribute), or None.

    Each entry is {"type": "int" | "float", "low": ..., "high": ...}, {"type": "bool"}, or
    {"choices": [...]}, optionally with a "default". Undeclared: arguments pass through."""
    decl = getattr(builder, "model_args", None)
    return dict(decl) if isinstance(decl, dict) else None


def check_args(name: str, decl: dict[str, dict[str, Any]] | None, args: dict[str, Any]) -> None:
    """ModelError naming the model and the argument, for an argument its declaration refuses."""
    if decl is None:
        return
    for key, value in args.items():
        if key not in decl:
            raise ModelError(f"model_args.{key}: model {name!r} declares no argument {key!r}; it takes {sorted(decl)}")
        _check_arg(name, key, decl[key], value)


def _check_arg(name: str, key: str, d: dict[str, Any], value: Any) -> None:
    where = f"model_args.{key}: model {name!r}"
    if "choices" in d:
        if value not in d["choices"]:
            raise ModelError(f"{where} takes one of {d['choices']}, got {value!r}")
        return
    kind = d.get("type")
    if kind == "bool":
        if not isinstance(value, bool):
            raise ModelError(f"{where} takes true or false, got {value!r}")
        return
    if kind in ("int", "float"):
        ok = isinstance(value, int) if kind == "int" else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            raise ModelError(f"{where} takes an {kind}, got {value!r}")
        low, high = d.get("low"), d.get("high")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ModelError(f"{where} takes {kind}s in [{low}, {high}], got {value!r}")


def build_plugin(name: str, num_classes: int, model_args: dict[str, Any]) -> nn.Module:
    """A plug-in's model: `build(num_classes=..., **model_args)` after its declared
    arguments are checked (defaults filled in by the builder itself)."""
    from cifar_sweeps.sweepspec import registry

    try:
        builder = registry.load_builder(name)
    except KeyError:
        raise ModelError(registry.unknown_model_message(name)) from None
    except Exception as e:  # an installed package that fails to import: say which
        raise ModelError(f"model {name!r}: its plug-in could not be loaded ({type(e).__name__}: {e})") from e
    check_args(name, declared_args(builder), model_args)
    try:
        net = builder(num_classes=num_classes, **model_args)
    except Exception as e:
        arg = next(iter(model_args), None)
        hint = f" with model_args {model_args}" if arg else ""
        raise ModelError(f"model {name!r}: its builder raised {type(e).__name__}: {e}{hint}") from e
    if not isinstance(net, nn.Module):
        raise ModelError(f"model {name!r}: its builder returned a {type(net).__name__}, not a torch nn.Module")
    return net


def check_on_meta(model: nn.Module, num_classes: int, image_size: int) -> int:
    """Run `model` once on the meta device (shapes only: no memory, no arithmetic) and check
    it maps (2, 3, S, S) images to (2, num_classes) logits; returns its parameter count."""
    out = model(torch.empty(2, 3, image_size, image_size, device="meta"))
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(
            f"its output for 2 images of 3x{image_size}x{image_size} is {shape}, not (2, {num_classes}) logits"
        )
    return count_parameters(model)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
