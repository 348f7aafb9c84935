from __future__ import annotations

import numpy as np
import torch

from cifar_sweeps.training.loader import Augment, DeviceSplit, apply_augment, cutout, random_crop


def _split(n=64):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    return DeviceSplit(x, np.arange(n) % 10, torch.device("cpu")), x


def test_eval_batches_are_unaugmented_and_in_order():
    split, x = _split()
    xs = torch.cat([b for b, _ in split.batches(10)])
    ref = split.normalize(torch.from_numpy(x))
    torch.testing.assert_close(xs, ref)


def test_train_batches_cover_every_image_once_and_flip_some():
    split, x = _split()
    g = torch.Generator().manual_seed(0)
    batches = list(split.batches(16, g, Augment(flip=True), chunk_images=32))
    xs = torch.cat([b for b, _ in batches])
    ys = torch.cat([y for _, y in batches])
    assert xs.shape == (64, 3, 32, 32) and sorted(ys.tolist()) == sorted((np.arange(64) % 10).tolist())
    ref = split.normalize(torch.from_numpy(x))
    flipped = same = 0
    for img in xs:
        d_same = (ref - img).abs().flatten(1).amax(1).min()
        d_flip = (ref.flip(3) - img).abs().flatten(1).amax(1).min()
        same += int(d_same < 1e-5)
        flipped += int(d_flip < 1e-5 and d_same >= 1e-5)
    assert same + flipped == 64 and 10 < flipped < 54


def test_augmentation_is_replayed_by_generator_state():
    split, _ = _split()
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    a = torch.cat([b for b, _ in split.batches(16, g, Augment(True, 4, 8))])
    g.set_state(state)
    b = torch.cat([b for b, _ in split.batches(16, g, Augment(True, 4, 8))])
    torch.testing.assert_close(a, b)


def test_crop_and_cutout():
    x = torch.ones(8, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    c = random_crop(x, 4, g)
    assert c.shape == x.shape and (c == 0).any()  # some padding shows after a shift
    k = cutout(x, 8, g)
    zeros = (k[:, 0] == 0).flatten(1).sum(1)
    assert k.shape == x.shape and (zeros > 0).all() and (zeros <= 81).all()
    assert torch.equal(apply_augment(x, Augment(False, 0, 0), g), x)
