"""A stand-in for ImageNet ResNet-50 weights (their shapes, random values)."""

from __future__ import annotations

import torch
import torchvision


def stand_in_resnet50(seed: int = 7) -> dict[str, torch.Tensor]:
    """A state dict shaped exactly like torchvision's ImageNet ResNet-50, with random values."""
    torch.manual_seed(seed)
    return torchvision.models.resnet50(weights=None).state_dict()
