"""The automatic search space (autospace.py): per-optimizer ranges, fixed values leaving the
space, params given winning, epochs within a budget, refit on by default, a stored spec that
parses to the same space, and clear refusals."""

from __future__ import annotations

import pytest

from cifar_sweeps.errors import SpecError
from cifar_sweeps.sweepspec.autospace import LR_RANGES, WD_RANGES
from cifar_sweeps.sweepspec.schema import parse_spec


def _range(spec, name):
    p = spec.params[name]
    return (p.type, p.low, p.high)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "adagrad", "adadelta"])
def test_each_optimizer_gets_its_own_lr_and_weight_decay_ranges(optimizer):
    spec = parse_spec({"fixed": {"model": "mlp", "optimizer": optimizer}})
    assert _range(spec, "lr") == ("loguniform", *LR_RANGES[optimizer])
    assert _range(spec, "weight_decay") == ("loguniform", *WD_RANGES[optimizer])
    assert spec.params["batch_size"].values == [64, 128, 256]
    assert _range(spec, "label_smoothing") == ("uniform", 0.0, 0.2)
    assert _range(spec, "epochs") == ("quniform", 3, 10)  # a quarter of TrainConfig's 10 epochs, to 10
    assert sorted(spec.auto_params) == sorted(spec.params) and spec.refit is True


def test_airbenchs_method_takes_its_own_scale_and_keeps_its_batch():
    spec = parse_spec({"fixed": {"model": "airbench", "whiten": True, "batch_size": 1024, "epochs": 8}})
    assert _range(spec, "lr") == ("loguniform", *LR_RANGES["sgd+method"])
    assert "batch_size" not in spec.params and "epochs" not in spec.params  # fixed: it stays so


def test_fixed_values_leave_the_space_and_given_params_win():
    spec = parse_spec(
        {
            "fixed": {"model": "mlp", "epochs": 4, "batch_size": 32},
            "params": {"auto": True, "lr": {"type": "uniform", "low": 0.01, "high": 0.02}},
            "refit": False,
        }
    )
    assert set(spec.params) == {"lr", "weight_decay", "label_smoothing"}
    assert _range(spec, "lr") == ("uniform", 0.01, 0.02) and "lr" not in spec.auto_params
    assert spec.refit is False


def test_a_budget_sets_the_longest_trial_so_that_eight_run_in_full():
    spec = parse_spec({"fixed": {"model": "mlp"}, "params": "auto", "budget": {"epochs": 60}, "refit": False})
    assert _range(spec, "epochs") == ("quniform", 2, 7)  # 60 // 8 = 7


def test_a_small_training_subset_drops_the_batches_it_cannot_fill():
    spec = parse_spec({"fixed": {"model": "mlp"}, "data": {"train_subset": 100}})
    assert spec.params["batch_size"].values == [64]


def test_a_stored_spec_parses_to_the_same_space():
    spec = parse_spec({"fixed": {"model": "mlp"}, "params": "auto"})
    again = parse_spec(spec.model_dump(mode="json"))
    assert again.params == spec.params and again.auto_params == spec.auto_params


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"params": "auto", "search": {"algorithm": "grid"}}, 'params: "auto" chooses ranges'),
        ({"params": {"auto": "yes"}}, "params.auto: true"),
        ({"params": "everything"}, "params"),
    ],
)
def test_a_wrong_auto_is_refused_naming_the_field(raw, says):
    with pytest.raises(SpecError, match=says):
        parse_spec({"fixed": {"model": "mlp"}, **raw})


def test_a_grid_with_no_params_is_still_one_configuration():
    spec = parse_spec({"fixed": {"model": "mlp"}, "search": {"algorithm": "grid"}})
    assert spec.params == {} and spec.auto_params == [] and spec.refit is False


def test_a_timed_automatic_sweep_keeps_half_its_budget_for_the_refit_unless_told_otherwise():
    raw = {"fixed": {"model": "mlp"}, "params": "auto", "time_budget_s": 600}
    assert parse_spec(raw).refit and parse_spec(raw).refit_share == 0.5
    assert parse_spec({**raw, "refit_share": 0.2}).refit_share == 0.2
    assert parse_spec({**raw, "refit": False}).refit_share is None
    untimed = {k: v for k, v in raw.items() if k != "time_budget_s"}
    assert parse_spec(untimed).refit and parse_spec(untimed).refit_share is None


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "linear"])
def test_a_searched_length_that_shapes_the_lr_runs_whole_trials_unless_a_scheduler_is_named(schedule):
    """The replay's finding: ASHA's rungs judge a short trial whose lr has decayed against a
    long one whose lr has not; where the space searches epochs and the schedule follows the
    length, trials run whole (fifo)."""
    raw = {"fixed": {"model": "mlp", "lr_schedule": schedule}, "params": "auto"}
    assert parse_spec(raw).scheduler.type == "fifo"
    assert parse_spec({**raw, "scheduler": {"type": "asha"}}).scheduler.type == "asha"  # named: kept
    assert parse_spec({**raw, "scheduler": {"grace_period": 2}}).scheduler.type == "asha"  # asha's setting
    assert parse_spec({**raw, "search": {"algorithm": "bohb"}}).scheduler.type == "hyperband"  # its own
    constant = {"fixed": {"model": "mlp", "lr_schedule": "none"}, "params": "auto"}  # rungs rank well
    assert parse_spec(constant).scheduler.type == "asha"
    fixed_length = {"fixed": {"model": "mlp", "lr_schedule": schedule, "epochs": 6}, "params": "auto"}
    assert parse_spec(fixed_length).scheduler.type == "asha"  # every trial the same length


def test_an_automatic_space_decays_the_lr_over_the_run_unless_the_spec_fixes_a_schedule():
    """The refit is tested at its last epoch (it has no validation images to choose one): the
    automatic space ends each run at a settled lr, linear decay to zero, and so runs its
    trials whole (fifo) when it searches their length. A schedule in `fixed` stays."""
    spec = parse_spec({"fixed": {"model": "mlp"}, "params": "auto"})
    assert spec.fixed["lr_schedule"] == "linear" and spec.scheduler.type == "fifo"
    kept = parse_spec({"fixed": {"model": "mlp", "lr_schedule": "cosine"}, "params": "auto"})
    assert kept.fixed["lr_schedule"] == "cosine"
    own = parse_spec({"fixed": {"model": "mlp"}, "params": {"lr": {"type": "uniform", "low": 0.01, "high": 0.1}}})
    assert "lr_schedule" not in own.fixed  # a space of one's own: nothing chosen for it
