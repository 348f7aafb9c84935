"""Batching on the training device: no PIL, no DataLoader workers.

Each split moves to the device once as a uint8 NCHW tensor (a quarter of float32's size).
Batches are cut from it in chunks: a chunk of shuffled images is gathered, normalized and
augmented with a few whole-tensor ops, then sliced into batches. Doing the work per chunk
rather than per batch keeps the per-batch cost at one slice, which matters on CPUs and for
small models (the report's MLP spends more time in its loader than in its matmuls).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from cifar_sweeps.sweepspec.config import TrainConfig

# Per-channel (RGB) mean and std, in [0, 1] units, that inputs are standardized with:
# - cifar: CIFAR-10 training-set statistics (zero mean, unit variance per channel);
# - report: the report's Normalize((0.5,)*3, (0.5,)*3), which maps [0, 1] to [-1, 1]: half
#   the spread of `cifar`, which is what its lr 0.02 for SGD was tuned against;
# - imagenet: the statistics ImageNet-pretrained backbones were trained with.
NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "report": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
Stats = tuple[tuple[float, float, float], tuple[float, float, float]]  # (mean, std) per channel
STATS_IMAGES = 10_000  # images the training split's own statistics are computed over (a sample)
STATS_PIXELS = STATS_IMAGES * 32 * 32  # and at most this many pixels: fewer images when they are larger
CHUNK_PIXELS = 4096 * 32 * 32  # pixels per loader chunk (4,096 CIFAR images; 64 at 256x256)
STATS_CHUNK = 256  # images summed at a time (float64: 256 x 32 x 32 x 3 x 8 bytes = 6 MiB at 32 px)


def channel_stats(x: np.ndarray, seed: int = 0) -> Stats:
    """Per-channel mean and std, in [0, 1] units, of uint8 NHWC images: a sample of at most
    STATS_IMAGES of them and STATS_PIXELS pixels (the figures move in the fourth decimal past
    that), summed in chunks, so the float copy is a chunk's, never the sample's."""
    cap = max(1, min(STATS_IMAGES, STATS_PIXELS // max(1, x.shape[1] * x.shape[2])))
    idx = np.arange(len(x))
    if len(x) > cap:
        idx = np.sort(np.random.default_rng(seed).choice(len(x), cap, replace=False))
    total, squares, n = np.zeros(3), np.zeros(3), 0
    for start in range(0, len(idx), STATS_CHUNK):
        f = np.asarray(x[idx[start : start + STATS_CHUNK]], np.float64).reshape(-1, 3) / 255
        total, squares, n = total + f.sum(0), squares + (f * f).sum(0), n + len(f)
    mean = total / max(n, 1)
    std = np.maximum(np.sqrt(np.maximum(squares / max(n, 1) - mean**2, 0)), 1e-3)  # a constant channel: no 0
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def chunk_images_for(shape: tuple[int, ...], batch_size: int) -> int:
    """Images per loader chunk for images of `shape` (N, H, W, C): CHUNK_PIXELS of them, at
    least one batch."""
    return max(batch_size, CHUNK_PIXELS // max(1, shape[1] * shape[2]))


def resolve_stats(normalize: str, classes: tuple[str, ...], x_train: np.ndarray) -> tuple[str, Stats]:
    """The statistics a run standardizes with, and their name: auto is CIFAR-10's on data of
    CIFAR-10's classes, else the training split's own (dataset)."""
    from cifar_sweeps.training.data import CLASSES

    if normalize == "auto":
        normalize = "cifar" if tuple(classes) == CLASSES else "dataset"
    if normalize == "dataset":
        return normalize, channel_stats(x_train)
    return normalize, NORMALIZATIONS[normalize]


def _stats(normalize: str | Stats) -> Stats:
    if isinstance(normalize, str):
        return NORMALIZATIONS["cifar" if normalize == "auto" else normalize]
    return normalize


def normalize_image(img: np.ndarray, normalize: str | Stats = "cifar") -> torch.Tensor:
    """One HWC uint8 image -> a standardized CHW float tensor (what `predict` feeds a model)."""
    mean, std = _stats(normalize)
    x = np.asarray(img, np.float32) / 255
    return torch.from_numpy((x - np.array(mean, np.float32)) / np.array(std, np.float32)).permute(2, 0, 1)


@dataclass(frozen=True)
class Augment:
    """Train-split augmentation. The report used flip only; crop and cutout are opt-in."""

    flip: bool = True
    crop_padding: int = 0  # pixels of zero padding (at the mean) before a random 32x32 crop
    cutout: int = 0  # side in pixels of one zeroed square per image; 0 = off
    alternate: bool = False  # with flip: the caller's per-epoch mask (method.alternate_flip_mask), not coin flips

    @property
    def active(self) -> bool:
        return self.flip or self.crop_padding > 0 or self.cutout > 0

    @classmethod
    def of(cls, cfg: TrainConfig) -> Augment:
        """A trial config's augmentation."""
        return cls(cfg.flip, cfg.crop_padding, cfg.cutout, cfg.alternate_flip)


class DeviceSplit:
    """One split's images (uint8, NHWC as stored) and labels, resident on `device`.

    On the CPU the tensor shares memory with the array it came from (e.g. a read-only Ray
    object-store buffer shared by every trial on the node): no per-trial copy of the data
    set. On a GPU it is copied there once. Chunks are permuted to NCHW as they are cut.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, device: torch.device, normalize: str | Stats = "cifar"):
        with warnings.catch_warnings():  # read-only buffers are fine: we never write to them
            warnings.simplefilter("ignore", UserWarning)
            self.x = torch.from_numpy(np.asarray(x)).to(device)
        self.y = torch.from_numpy(np.asarray(y, np.int64)).to(device)
        self.device = device
        mean, std = _stats(normalize)
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255

    def __len__(self) -> int:
        return len(self.y)

    def normalize(self, x: torch.Tensor, memory_format=torch.contiguous_format) -> torch.Tensor:
        """uint8 NHWC -> float NCHW in `memory_format`, standardized per channel. The layout
        change happens on the uint8 tensor (a quarter of the bytes to move); for
        channels_last the NHWC bytes already are that layout and nothing moves."""
        x = x.permute(0, 3, 1, 2).contiguous(memory_format=memory_format).float()
        return x.sub_(self.mean).div_(self.std)

    def batches(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        augment: Augment | None = None,
        chunk_images: int | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
        flip_mask: torch.Tensor | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled and augmented when a generator is given; in order otherwise. With a
        `flip_mask` (one bool per image of the split), flip mirrors the images it marks
        instead of a random half."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else None
        chunk_images = chunk_images or chunk_images_for(tuple(self.x.shape), batch_size)
        per_chunk = max(chunk_images // batch_size, 1) * batch_size
        for start in range(0, n, per_chunk):
            if order is None:
                xc = self.normalize(self.x[start : start + per_chunk], memory_format)
                yc = self.y[start : start + per_chunk]
            else:
                picked = order[start : start + per_chunk]
                idx = picked.to(self.device)
                xc, yc = self.x[idx], self.y[idx]
                if augment is not None and augment.flip:  # on uint8 NHWC: a quarter of the bytes
                    xc = flip_marked(xc, flip_mask[picked]) if flip_mask is not None else flip_half(xc, generator)
                xc = self.normalize(xc, memory_format)
                if augment is not None and augment.active:
                    xc = apply_augment(xc, Augment(False, augment.crop_padding, augment.cutout), generator)
            for b in range(0, len(yc), batch_size):
                yield xc[b : b + batch_size], yc[b : b + batch_size]


def flip_half(x: torch.Tensor, g: torch.Generator | None, dim: int = 2) -> torch.Tensor:
    """Mirror a random half of the images (p=0.5 each, the report's) along `dim` (width:
    2 for NHWC, 3 for NCHW), in place."""
    return flip_marked(x, torch.rand(x.shape[0], generator=g) < 0.5, dim)


def flip_marked(x: torch.Tensor, mask: torch.Tensor, dim: int = 2) -> torch.Tensor:
    """Mirror the images `mask` marks along `dim` (width: 2 for NHWC), in place."""
    idx = torch.nonzero(mask).squeeze(1).to(x.device)
    x[idx] = x[idx].flip(dim)
    return x


def apply_augment(x: torch.Tensor, aug: Augment, g: torch.Generator | None) -> torch.Tensor:
    """Random flip / crop / cutout of a normalized NCHW batch; random draws come from `g`
    (a CPU generator, so a saved generator state replays the same augmentations)."""
    if aug.flip:
        x = flip_half(x, g, dim=3)
    if aug.crop_padding > 0:
        x = random_crop(x, aug.crop_padding, g)
    if aug.cutout > 0:
        x = cutout(x, aug.cutout, g)
    return x


def random_crop(x: torch.Tensor, pad: int, g: torch.Generator | None) -> torch.Tensor:
    n, _, h, w = x.shape
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return xp[batch, chan, rows, cols]


def cutout(x: torch.Tensor, size: int, g: torch.Generator | None) -> torch.Tensor:
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n,), generator=g).to(x.device)
    cx = torch.randint(0, w, (n,), generator=g).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = ((ys - cy[:, None]).abs() <= size // 2)[:, :, None]
    in_x = ((xs - cx[:, None]).abs() <= size // 2)[:, None, :]
    return x * (~(in_y & in_x))[:, None].to(x.dtype)
