"""torch.compile trains the same net and saves plain parameter names."""

from __future__ import annotations

import pytest

from cifar_sweeps.training.train import (
    Trainer,
)
from tests.helpers.configs import train_config as _cfg


@pytest.mark.slow  # torch.compile builds C++ kernels on a CPU: about a minute
def test_compile_trains_the_same_net_and_saves_plain_names(tiny_splits):
    eager = Trainer(_cfg(model="simple_cnn", epochs=2), tiny_splits)
    fast = Trainer(_cfg(model="simple_cnn", epochs=2, compile=True), tiny_splits)
    a, b = eager.step_epoch(), fast.step_epoch()
    assert b.train_loss == pytest.approx(a.train_loss, rel=1e-3)
    assert list(fast.state_dict()["model"]) == list(eager.state_dict()["model"])  # no "_orig_mod." prefix
    assert fast.step_epoch().train_loss < b.train_loss  # it goes on learning through the compiled net
