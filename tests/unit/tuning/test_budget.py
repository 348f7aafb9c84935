"""Epoch budgets: a sweep stops once its trials have trained `budget.epochs` epochs in
total (at most one more per other running trial), says so in its reason, keeps every
trial, and a resumed sweep counts what it spent before (no overspending)."""

from __future__ import annotations

import pytest

from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from cifar_sweeps.sweepspec.schema import parse_spec
from cifar_sweeps.tuning.driver import StoreStopper
from tests.helpers.specs import LR_PARAMS as LR


def _metrics(epoch: int) -> dict:
    return {
        "epoch": epoch,
        "train_loss": 1.0,
        "train_acc": 0.5,
        "val_loss": 1.0,
        "val_acc": 0.5,
        "lr": 0.1,
        "seconds": 1.0,
        "images_per_s": 1.0,
    }


def test_num_samples_is_left_open_under_a_budget():
    spec = parse_spec({"name": "b", "budget": {"epochs": 30}, "fixed": {"model": "mlp"}, "params": LR})
    assert spec.num_samples == 30  # each trial trains at least one epoch: never the bound
    assert (
        parse_spec(
            {"name": "b", "budget": {"epochs": 30}, "num_samples": 4, "fixed": {"model": "mlp"}, "params": LR}
        ).num_samples
        == 4
    )


def test_the_stopper_counts_every_trial_epoch_once_including_those_before_a_resume(tmp_path):
    store = get_store(f"sqlite:///{tmp_path / 's.db'}")
    sweep = store.create_sweep({"name": "b"}, "synthetic:1", "v")
    done = lifecycle.trial_started(store, sweep.id, "t0", {"model": "mlp"}, 4)
    for e in (1, 2, 3):  # spent before the driver was restarted
        store.trial_epoch(done, _metrics(e))
    stopper = StoreStopper(store.url, sweep.id, budget_epochs=6)
    assert not stopper("t1", {"epoch": 1}) and not stopper("t1", {"epoch": 1})  # a replayed epoch: once
    assert not stopper("t0", {"epoch": 3})  # recorded before: already counted
    assert not stopper("t2", {"epoch": 1})
    assert stopper("t1", {"epoch": 2}) and stopper.stop_all()  # 3 + 3: spent
    assert not StoreStopper(store.url, sweep.id)("t1", {"epoch": 9})  # no budget: never


def test_an_open_num_samples_over_the_limit_says_why():
    from cifar_sweeps.errors import SpecError
    from cifar_sweeps.settings import Settings
    from cifar_sweeps.sweepspec.schema import check_limits

    spec = parse_spec({"name": "b", "budget": {"epochs": 5000}, "fixed": {"model": "mlp"}, "params": LR})
    with pytest.raises(SpecError, match="under a budget num_samples defaults to budget.epochs"):
        check_limits(spec, Settings(max_num_samples=1000))
