"""Plateau stopping (`stop.plateau`, Ray Tune's TrialPlateauStopper beside the sweep's own
stopper): a flat trial ends after its grace period, a learning one goes on, and a bad
setting is a 422 naming the field."""

from __future__ import annotations

import pytest

from cifar_sweeps.errors import SpecError
from cifar_sweeps.sweepspec.schema import parse_spec
from cifar_sweeps.tuning.driver import StoreStopper, with_plateau

BASE = {
    "name": "p",
    "fixed": {"model": "mlp", "epochs": 20},
    "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
}


def _stopper(**plateau):
    spec = parse_spec({**BASE, "stop": {"plateau": plateau}})
    return with_plateau(spec, StoreStopper("sqlite://", "sw-x", every_s=1e9))  # no store read in this test


def test_a_flat_trial_stops_after_its_grace_period_and_a_learning_one_goes_on():
    stop = _stopper(std=0.01, num_results=3, grace_period=4)
    flat = [stop("flat", {"val_acc": 0.5, "epoch": e, "training_iteration": e}) for e in range(1, 7)]
    assert flat == [False, False, False, True, True, True]
    rising = [stop("up", {"val_acc": 0.1 * e, "epoch": e, "training_iteration": e}) for e in range(1, 7)]
    assert not any(rising)


def test_without_a_plateau_the_sweeps_stopper_is_alone():
    spec = parse_spec(BASE)
    base = StoreStopper("sqlite://", "sw-x", every_s=1e9)
    assert with_plateau(spec, base) is base


@pytest.mark.parametrize(
    ("plateau", "field"),
    [
        ({"std": 0}, "stop.plateau.std"),
        ({"num_results": 1}, "stop.plateau.num_results"),
        ({"metric": "test_acc"}, "stop.plateau.metric"),
    ],  # fmt: skip
)
def test_a_bad_plateau_is_refused_naming_the_field(plateau, field):
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        parse_spec({**BASE, "stop": {"plateau": plateau}})
