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


def test_a_time_budget_fits_the_services_epochs_from_measured_epochs_and_stores_the_space(tmp_path):
    """The driver's step before the search: the store measured 2 s an epoch of 1,250 images
    for this shape (mlp, batch 64, 1 CPU); 40 s, half for the refit, 2 at a time: 20 x 2 /
    (8 x 2) = 2.5, so trials of 1-2 epochs, and the sweep's stored spec says so."""
    from cifar_sweeps.training.data import split_train_val, synthetic
    from cifar_sweeps.tuning.driver import fitted_to_time
    from tests.helpers.plans import measured_store

    settings, store = measured_store(tmp_path)
    raw = {
        "fixed": {"model": "mlp", "batch_size": 64},
        "params": "auto",
        "time_budget_s": 40,
        "resources_per_trial": {"cpu": 1},
    }
    spec = parse_spec(raw)
    sweep = store.create_sweep(spec.model_dump(mode="json"), "synthetic:1250", "v")
    splits = split_train_val(synthetic(1250, 100), 0.2, test_fraction=0.0)
    assert len(splits.y_train) + len(splits.y_val) == 1250
    run = fitted_to_time(spec, settings, store, sweep.id, splits, n_slots=2)
    assert (run.params["epochs"].low, run.params["epochs"].high) == (1, 2)
    stored = parse_spec(store.get_sweep(sweep.id).spec)
    assert stored.params == run.params and stored.auto_params == spec.auto_params
    assert fitted_to_time(spec, settings, store, sweep.id, splits, n_slots=16).params == spec.params  # 20 fit
    untimed = parse_spec({k: v for k, v in raw.items() if k != "time_budget_s"})
    assert fitted_to_time(untimed, settings, store, sweep.id, splits, n_slots=2) is untimed
