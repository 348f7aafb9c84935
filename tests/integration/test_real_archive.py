"""The real CIFAR-10 archive (CIFAR10_ARCHIVE): decoded, split and cached as the synthetic data
is."""

from __future__ import annotations

import numpy as np
import pytest

from cifar_sweeps.training.data import (
    load_cifar,
    load_splits,
)
from tests.conftest import real_archive


@pytest.mark.realdata
@pytest.mark.skipif(real_archive() is None, reason="CIFAR10_ARCHIVE not set")
def test_real_archive(tmp_path):
    cache = tmp_path / "cache"
    d = load_cifar(real_archive(), cache, progress=False)
    assert d.x_train.shape == (50000, 32, 32, 3) and d.x_test.shape == (10000, 32, 32, 3)
    assert np.bincount(d.y_train).tolist() == [5000] * 10
    assert np.bincount(d.y_test).tolist() == [1000] * 10
    mean = d.x_train.reshape(-1, 3).mean(0) / 255
    np.testing.assert_allclose(mean, (0.4914, 0.4822, 0.4465), atol=0.01)
    s = load_splits(real_archive(), cache, 0.2, 0)
    assert s.sizes == {"train": 40000, "val": 10000, "test": 10000}
