"""Population-based training, below Ray: the spec's pbt settings and what they refuse, the
scheduler built from the space, a changed lr or weight decay taking effect in a restored
optimizer mid-schedule (Trainer.retune), values kept in their param's range, the plan."""

from __future__ import annotations

import io

import pytest
import torch

from cifar_sweeps.analysis.plan import per_trial_epochs
from cifar_sweeps.errors import InputError
from cifar_sweeps.sweepspec.schema import SweepSpec
from cifar_sweeps.training.train import TrainConfig, Trainer

LR = {"type": "loguniform", "low": 1e-3, "high": 0.5}


def _spec(**over) -> dict:
    base = {
        "name": "pbt",
        "num_samples": 4,
        "fixed": {"model": "mlp", "epochs": 6},
        "params": {"lr": LR, "batch_size": {"type": "choice", "values": [32, 64]}},
        "scheduler": {"type": "pbt"},
    }
    return {**base, **over}


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"model": "mlp", "epochs": 3, "batch_size": 32, "lr": 0.05, "seed": 0, "threads": 1, **kw})


def _state_after_one_epoch(splits, **kw) -> dict:
    t = Trainer(_cfg(**kw), splits)
    t.step_epoch()
    buf = io.BytesIO()
    torch.save(t.state_dict(), buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _lrs_after_restore(splits, state: dict, **kw) -> tuple[dict, list[float], list[float]]:
    """What retune changed, the lrs right after the restore, and after one more epoch."""
    t = Trainer(_cfg(**kw), splits)
    t.load_state_dict(state)
    changed = t.retune(state["config"])
    now = [g["lr"] for g in t.opt.param_groups]
    t.step_epoch()
    return changed, now, [g["lr"] for g in t.opt.param_groups]


def test_a_pbt_spec_draws_its_population_at_random_and_mutates_what_it_searches():
    spec = SweepSpec.model_validate(_spec())
    assert spec.search.algorithm == "random"
    from cifar_sweeps.sweepspec.schema import pbt_mutated
    from cifar_sweeps.tuning.pbt import GuardedPBT
    from cifar_sweeps.tuning.schedulers import decision_epochs, make_scheduler

    assert pbt_mutated(spec) == ["lr"]  # batch_size is searched but can't change mid-run
    sched = make_scheduler(spec, "sqlite://", "s")
    assert isinstance(sched, GuardedPBT) and set(sched._hyperparam_mutations) == {"lr"}
    assert sched._perturbation_interval == 2 and sched._quantile_fraction == 0.25
    assert sched._synch is False  # Ray's asynchronous PBT unless the spec asks
    synch = SweepSpec.model_validate(_spec(scheduler={"type": "pbt", "synch": True}))
    assert make_scheduler(synch, "sqlite://", "s")._synch is True
    assert decision_epochs(spec) == frozenset()  # it stops no trial: each is tested at its end


@pytest.mark.parametrize(
    ("over", "names"),
    [
        ({"search": {"algorithm": "hyperopt"}}, "search.algorithm"),
        ({"refit": True}, "refit"),
        ({"repeat": {"top": 1, "seeds": 2}}, "repeat"),
        ({"scheduler": {"type": "pbt", "mutate": ["batch_size"]}}, "can't change in the middle of training"),
        ({"scheduler": {"type": "pbt", "mutate": ["weight_decay"]}}, "params.weight_decay"),
        ({"params": {"batch_size": {"type": "choice", "values": [32, 64]}}}, "needs a param to change"),
        ({"scheduler": {"type": "pbt", "perturbation_interval": 6}}, "never change one"),
        ({"scheduler": {"type": "pbt"}, "checkpoint_every": 4}, "not a multiple of checkpoint_every"),
        ({"scheduler": {"type": "asha", "perturbation_interval": 3}}, "a pbt setting"),
        ({"scheduler": {"type": "asha", "synch": True}}, "scheduler.synch: a pbt setting"),
        ({"scheduler": {"type": "pbt", "quantile_fraction": 0.7}}, "quantile_fraction"),
    ],
)
def test_what_pbt_refuses_is_named(over, names):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as e:
        SweepSpec.model_validate(_spec(**over))
    assert names in str(e.value)


@pytest.mark.parametrize("schedule", ["onecycle", "step", "none"])
def test_a_changed_lr_scales_the_restored_schedule_where_it_was(tiny_splits, schedule):
    """The same state restored at lr 0.05 and at 0.1: the second's lr is twice the first's
    right after the restore and after another epoch (the schedule goes on at the new level)."""
    state = _state_after_one_epoch(tiny_splits, lr_schedule=schedule, step_size=1, gamma=0.5)
    same, a_now, a_next = _lrs_after_restore(tiny_splits, state, lr_schedule=schedule, step_size=1, gamma=0.5)
    changed, b_now, b_next = _lrs_after_restore(
        tiny_splits, state, lr_schedule=schedule, step_size=1, gamma=0.5, lr=0.1
    )
    assert same == {} and changed == {"lr": (0.05, 0.1)}
    assert b_now == pytest.approx([2 * x for x in a_now]) and b_next == pytest.approx([2 * x for x in a_next])
    if schedule != "none":
        assert a_next != pytest.approx(a_now)  # the schedule moved on, at both levels


def test_a_changed_weight_decay_and_label_smoothing_take_effect(tiny_splits):
    state = _state_after_one_epoch(tiny_splits, weight_decay=5e-4, label_smoothing=0.0)
    t = Trainer(_cfg(weight_decay=1e-3, label_smoothing=0.2), tiny_splits)
    t.load_state_dict(state)
    assert [g["weight_decay"] for g in t.opt.param_groups] == [5e-4]  # as saved
    assert t.retune(state["config"]) == {"weight_decay": (5e-4, 1e-3), "label_smoothing": (0.0, 0.2)}
    assert [g["weight_decay"] for g in t.opt.param_groups] == [1e-3]
    assert t.loss_fn.label_smoothing == 0.2 and t.epoch == 1


def test_a_scaled_value_stays_in_its_params_range():
    from cifar_sweeps.tuning.pbt import KeepInRange, _bounds

    spec = SweepSpec.model_validate(
        _spec(params={"lr": LR, "label_smoothing": {"type": "uniform", "low": 0.0, "high": 0.2}})
    )
    keep = KeepInRange(_bounds(spec, ["lr", "label_smoothing"]))
    assert keep({"lr": 0.6, "label_smoothing": -0.01, "batch_size": 64}) == {
        "lr": 0.5,
        "label_smoothing": 0.0,
        "batch_size": 64,
    }
    assert keep({"lr": 0.01, "label_smoothing": 0.1}) == {"lr": 0.01, "label_smoothing": 0.1}


def test_the_plan_counts_every_pbt_trial_to_its_end_and_replay_refuses_pbt():
    spec = SweepSpec.model_validate(_spec())
    per = per_trial_epochs(spec)
    assert per.min == per.max == 6 and per.assumption.startswith("pbt")
    from cifar_sweeps.tuning.replay import replay_spec

    with pytest.raises(InputError, match="can't replay pbt"):
        replay_spec(spec, table=None, name="mlp")
