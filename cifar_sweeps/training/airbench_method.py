"""airbench's training method as parts of a training run (KellerJordan/cifar10-airbench,
its ablations in docs/performance.md): each is a TrainConfig field, off by default, so a
sweep can ablate it.

- whitening: the first layer's weights are the eigenvectors of the covariance of the
  training images' 2x2 patches, scaled to unit variance, with their negatives; frozen.
- dirac: 3x3 convs start as the identity on their first input-width filters.
- BatchNorm biases train at a multiple of the lr, with weight decay scaled down so that
  each step decays them as much as the other weights; BatchNorm's scales may stay 1.
- lookahead: every 5 steps the weights are pulled to an EMA of themselves, with a decay
  that grows as (step / total)^3; the run ends on the EMA.
- alternating flip: each image is mirrored on every other epoch, from a random start.
- multi-view test-time augmentation.
- linear lr schedule: warm-up from 0.2 lr, then decay to 0.07 lr.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from cifar_sweeps.sweepspec.config import TrainConfig

WHITEN_IMAGES = 5000  # training images the patch covariance is estimated from (airbench's)
WHITEN_EPS = 5e-4  # added to the eigenvalues: caps the gain of near-constant directions
LOOKAHEAD_EVERY = 5  # steps between two pulls to the EMA
LOOKAHEAD_BASE = 0.95**5  # the EMA decay at the run's end, reached as (step / total)^3
WARMUP_FRACTION = 0.23  # of the steps, for the linear schedule
LR_START, LR_END = 0.2, 0.07  # the linear schedule's ends, as fractions of lr
FLIP_SEED_SALT = 0x5EED  # the alternating flip's start draws from the seed, apart from the batches'


# ---------------------------------------------------------------- initialization


def initialize(model: nn.Module, cfg: TrainConfig) -> None:
    """The method's changes to a model just built (the whitening waits for the data)."""
    if cfg.dirac:
        dirac_init(model)
    if cfg.bn_momentum is not None:
        set_bn_momentum(model, cfg.bn_momentum)
    if cfg.freeze_bn_weight:
        freeze_bn_weights(model)


def patches(x: torch.Tensor, k: int) -> torch.Tensor:
    """Every k x k patch of NCHW images, flattened: (N * (H-k+1) * (W-k+1), C * k * k)."""
    c = x.shape[1]
    p = x.float().unfold(2, k, 1).unfold(3, k, 1)  # N, C, H', W', k, k
    return p.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)


def fit_whitening(conv: nn.Conv2d, images: torch.Tensor, eps: float = WHITEN_EPS) -> None:
    """Set `conv`'s weights (2 x C*k*k filters of C x k x k) to whiten `images`' patches:
    half the filters are the covariance's eigenvectors over sqrt(eigenvalue + eps), the
    other half their negatives (so a ReLU-like activation after it loses nothing)."""
    c, k = conv.in_channels, conv.kernel_size[0]
    if conv.out_channels != 2 * c * k * k:
        raise ValueError(f"a whitening layer has 2 x {c * k * k} filters, this one {conv.out_channels}")
    flat = patches(images, k).double()
    cov = flat.T @ flat / len(flat)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + eps)[:, None]).flip(0)
    filters = filters.reshape(c * k * k, c, k, k).to(conv.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(torch.cat((filters, -filters)).to(conv.weight.device))


def dirac_init(model: nn.Module) -> int:
    """Make each 3x3 stride-1 conv the identity on its first min(in, out) filters (the
    rest keep their random init); the number of convs set."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.stride == (1, 1) and m.groups == 1:
            with torch.no_grad():
                nn.init.dirac_(m.weight[: min(m.in_channels, m.out_channels)])
            n += 1
    return n


def set_bn_momentum(model: nn.Module, momentum: float) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum


def freeze_bn_weights(model: nn.Module) -> None:
    """BatchNorm's scales stay at their init (1): only the biases train."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None:
            m.weight.requires_grad_(False)


# ---------------------------------------------------------------- optimization


def bn_biases(model: nn.Module) -> list[nn.Parameter]:
    return [m.bias for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.bias is not None]


def param_groups(model: nn.Module, lr: float, weight_decay: float, bn_bias_lr: float) -> list[dict]:
    """One group, or two when BatchNorm biases take `bn_bias_lr` times the lr: their weight
    decay is divided by as much, so lr x weight decay (the decay of one step) is the same."""
    if bn_bias_lr == 1.0:
        return [{"params": list(model.parameters()), "lr": lr, "weight_decay": weight_decay}]
    biases = bn_biases(model)
    ids = {id(p) for p in biases}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [
        {"params": biases, "lr": lr * bn_bias_lr, "weight_decay": weight_decay / bn_bias_lr},
        {"params": rest, "lr": lr, "weight_decay": weight_decay},
    ]


def linear_schedule(total_steps: int) -> Callable[[int], float]:
    """The lr multiplier at each step: LR_START to 1 over the warm-up, then 1 to LR_END."""
    warmup = max(int(total_steps * WARMUP_FRACTION), 1)
    decay = max(total_steps - warmup, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return LR_START + (1 - LR_START) * step / warmup
        return 1 + (LR_END - 1) * min((step - warmup) / decay, 1.0)

    return factor


class Lookahead:
    """airbench's lookahead: every LOOKAHEAD_EVERY steps, ema <- ema + (1 - d) (w - ema) and
    then w <- ema, with d = LOOKAHEAD_BASE (step / total)^3: no pull early, a strong one
    late. On the last step the weights become the EMA. Float tensors of the state dict
    (BatchNorm's running statistics too) take part."""

    def __init__(self, model: nn.Module, total_steps: int):
        self.model = model
        self.total = max(total_steps, 1)
        self.ema = {k: v.detach().clone() for k, v in self._floats()}

    def _floats(self) -> Iterator[tuple[str, torch.Tensor]]:
        return ((k, v) for k, v in self.model.state_dict().items() if v.is_floating_point())

    def decay(self, step: int) -> float:
        return LOOKAHEAD_BASE * (min(step, self.total) / self.total) ** 3

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """`step`: steps taken so far, this one included (1-based)."""
        if step >= self.total:
            self._pull(1.0)
        elif step % LOOKAHEAD_EVERY == 0:
            self._pull(self.decay(step))

    def _pull(self, decay: float) -> None:
        for k, w in self._floats():
            self.ema[k].lerp_(w, 1 - decay)
            w.copy_(self.ema[k])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in self.ema.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            self.ema[k].copy_(v)


# ---------------------------------------------------------------- data


def alternate_flip_mask(n: int, epoch: int, seed: int) -> torch.Tensor:
    """Which of n images to mirror in `epoch` (0-based): a random half in even epochs, the
    other half in odd ones, the same halves every run of the seed."""
    g = torch.Generator().manual_seed(seed ^ FLIP_SEED_SALT)
    start = torch.rand(n, generator=g) < 0.5
    return start ^ (epoch % 2 == 1)


# ---------------------------------------------------------------- evaluation


def tta_views(x: torch.Tensor, level: int) -> list[tuple[float, torch.Tensor]]:
    """(weight, view) of NCHW images: level 0 the image; 1 with its mirror (half each);
    2 also the images shifted one pixel up-left and down-right (reflected at the border),
    each with its mirror: the image and its mirror weigh 1/4 each, the four others 1/8."""
    if level == 0:
        return [(1.0, x)]
    mirrored = [(0.5, x), (0.5, x.flip(3))]
    if level == 1:
        return mirrored
    h, w = x.shape[2:]
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[:, :, :h, :w], padded[:, :, 2:, 2:]]
    views = [(wt / 2, v) for wt, v in mirrored]
    for s in shifted:
        views += [(0.125, s), (0.125, s.flip(3))]
    return views


def tta_logits(model: nn.Module, x: torch.Tensor, level: int) -> torch.Tensor:
    """The weighted mean of the model's fp32 logits over the views of `level`."""
    out = None
    for weight, view in tta_views(x, level):
        logits = model(view.contiguous(memory_format=_format_of(x))).float() * weight
        out = logits if out is None else out + logits
    return out


def _format_of(x: torch.Tensor) -> torch.memory_format:
    return (
        torch.channels_last
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format
    )


def total_steps(epochs: int, steps_per_epoch: int) -> int:
    return max(math.ceil(epochs * steps_per_epoch), 1)
