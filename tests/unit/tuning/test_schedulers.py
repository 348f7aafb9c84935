"""Where a scheduler may stop a trial: the epochs at which a trial tests its best weights."""

from __future__ import annotations

import math

import pytest

from cifar_sweeps.sweepspec.schema import SweepSpec
from cifar_sweeps.tuning.schedulers import decision_epochs, make_scheduler

LR = {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}}


def _spec(scheduler: dict, epochs, algorithm: str = "hyperopt") -> SweepSpec:
    params = {**LR, "epochs": epochs} if isinstance(epochs, dict) else LR
    fixed = {"model": "mlp"} if isinstance(epochs, dict) else {"model": "mlp", "epochs": epochs}
    return SweepSpec(scheduler=scheduler, search={"algorithm": algorithm}, fixed=fixed, params=params)


@pytest.mark.parametrize(
    ("grace", "rf", "epochs"),
    [
        (1, 2, 4),
        (8, 2, {"type": "quniform", "low": 12, "high": 20, "q": 2}),  # cpu-fast's
        (1, 3, 30),
        (2, 1.5, 10),  # milestones 3.0, 4.5, 6.75: judged at the first epoch past them
        (5, 4, 5),
    ],
)
def test_ashas_decision_epochs_are_its_rungs_as_ray_places_them(grace, rf, epochs):
    spec = _spec({"type": "asha", "grace_period": grace, "reduction_factor": rf}, epochs)
    asha = make_scheduler(spec, "sqlite://", "s")
    (bracket,) = asha._brackets
    assert decision_epochs(spec) == {math.ceil(milestone) for milestone, _ in bracket._rungs}


def test_fifo_stops_a_trial_only_at_its_end_and_hyperband_at_each_new_best():
    assert decision_epochs(_spec({"type": "fifo"}, 6)) == frozenset()
    assert decision_epochs(_spec({"type": "hyperband"}, 6, "bohb")) is None
