"""tinynet: a small conv net for any image size and any number of classes.

cifar-sweeps builds it as `build(num_classes=N, **model_args)`; `build.model_args` declares
the arguments a spec may set or search, so a spec that asks for channels=1000 is refused at
submit, naming the argument, before any trial runs.
"""

from __future__ import annotations

from torch import nn


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]


def build(num_classes: int = 10, channels: int = 16, blocks: int = 2) -> nn.Module:
    """`blocks` conv blocks, each doubling `channels`, then a global average pool and a
    linear head: it takes images of any size of at least 2**blocks pixels."""
    layers: list[nn.Module] = []
    c_in, c = 3, channels
    for _ in range(blocks):
        layers += _block(c_in, c)
        c_in, c = c, c * 2
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))


# Declared arguments: the types and ranges a spec's fixed.model_args / params["model_args.*"]
# may take (optional: without it, any argument is passed through to build()).
build.model_args = {
    "channels": {"type": "int", "low": 4, "high": 256},
    "blocks": {"type": "int", "low": 1, "high": 4},
}
