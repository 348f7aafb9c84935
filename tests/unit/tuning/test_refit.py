"""The refit's pure parts: which configuration, how many epochs and why, its Tune config,
its time estimate; the spec's reserve for it under a budget, and the plan's count of it; the
splits it trains on, and a run with no validation images tested once, at its end."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cifar_sweeps.analysis.plan import make_plan
from cifar_sweeps.analysis.ranking import REFIT_OF, REPEAT_ID, searched
from cifar_sweeps.analysis.schemas import PlanResources
from cifar_sweeps.analysis.throughput import Throughput
from cifar_sweeps.errors import SpecError
from cifar_sweeps.sweepspec.schema import parse_spec
from cifar_sweeps.training.data import split_train_val, synthetic, with_validation_in_training
from cifar_sweeps.training.train import TrainConfig, Trainer
from cifar_sweeps.tuning.driver import RefitReserve
from cifar_sweeps.tuning.refit import (
    REFIT_MARGIN,
    plan_refit,
    refit_epochs,
    refit_is_stale,
    refit_seconds,
    stretched,
    tune_config,
)


def _trial(tid, acc, lr=0.1, seed=0, status="terminated", best_epoch=3, refit_of=None, seconds=30.0, epochs=3):
    return SimpleNamespace(
        id=tid,
        tune_trial_id=tid,
        sweep_id="sw-a",
        config={"model": "mlp", "lr": lr, "seed": seed, "epochs": 6, "lr_schedule": "onecycle"},
        status=status,
        val_acc=acc,
        val_loss=None if acc is None else 1 - acc,
        best_epoch=best_epoch,
        test_acc=None,
        repeat_of=None,
        refit_of=refit_of,
        seconds=seconds,
        epochs=epochs,
        train_images=None,
    )


@pytest.mark.parametrize(
    ("schedule", "best", "epochs"),
    [("onecycle", 4, 10), ("linear", 4, 10), ("cosine", 4, 10), ("none", 4, 4), ("exponential", 7, 7), ("step", 2, 2)],
)
def test_a_length_shaped_schedule_refits_in_full_any_other_to_its_best_epoch(schedule, best, epochs):
    n, why = refit_epochs({"model": "mlp", "epochs": 10, "lr_schedule": schedule}, best)
    assert n == epochs
    assert ("full schedule" in why) == (epochs == 10)


def test_the_old_name_of_the_schedule_is_read():
    assert refit_epochs({"model": "mlp", "epochs": 9, "scheduler": "cosine"}, 3)[0] == 9


def test_the_refit_trains_the_best_configuration_of_the_search_never_a_refit_or_a_failed_trial():
    trials = [
        _trial("a", 0.70, lr=0.1),
        _trial("b", 0.80, lr=0.2, seed=3),
        _trial("c", 0.95, lr=0.3, status="errored"),
        _trial("r", 0.99, lr=0.4, refit_of="b"),
    ]
    run = plan_refit(trials, "val_acc", "max")
    assert run.source_id == "b" and run.epochs == 6
    assert run.config == {"model": "mlp", "lr": 0.2, "seed": 3, "epochs": 6, "lr_schedule": "onecycle"}
    assert [t.id for t in searched(trials)] == ["a", "b", "c"]
    cfg = tune_config(run)
    assert cfg[REFIT_OF] == "b" and cfg[REPEAT_ID] == "refit" and cfg["test_on_best"] is True
    assert plan_refit([_trial("x", 0.5, status="errored")], "val_acc", "max") is None
    # A trial a budget cut is still running in the store when the refit is planned: it counts.
    assert plan_refit([*trials, _trial("cut", 0.9, lr=0.5, status="running")], "val_acc", "max").source_id == "cut"
    assert plan_refit(trials, "val_loss", "min").source_id == "b"  # 0.2 is the lowest val_loss usable


def test_a_refit_is_stale_for_another_configuration_not_for_another_seed_of_its_own():
    """Repeats of the refitted configuration that score higher pick a seed's run as the
    source: the refit done stays; another configuration that wins now refits again."""
    trials = [_trial("a", 0.80, lr=0.1), _trial("b", 0.70, lr=0.2)]
    row = _trial("refit", 0.80, refit_of="a")
    repeat = _trial("a-s2", 0.85, lr=0.1, seed=2)
    assert plan_refit([*trials, repeat], "val_acc", "max").source_id == "a-s2"
    assert not refit_is_stale([*trials, repeat, row], row, plan_refit([*trials, repeat], "val_acc", "max"))
    better = _trial("c", 0.90, lr=0.3)
    assert refit_is_stale([*trials, better, row], row, plan_refit([*trials, better], "val_acc", "max"))


def test_the_refits_time_is_its_images_and_epochs_at_the_searchs_median_training_rate():
    trials = [_trial("a", 0.7), _trial("b", 0.8)]
    rates = [100.0, 200.0, 400.0]  # images per second of the search's epochs
    # 6 epochs (onecycle: the full schedule) of 5,000 images at 200 images/s, with the margin
    assert refit_seconds(trials, rates, "val_acc", "max", 10, 5000) == pytest.approx(5000 * 6 / 200 * REFIT_MARGIN)
    unscored = [_trial("a", None, status="running")]  # no epoch yet: the max epochs
    assert refit_seconds(unscored, rates, "val_acc", "max", 10, 5000) == pytest.approx(5000 * 10 / 200 * REFIT_MARGIN)
    assert refit_seconds(trials, [], "val_acc", "max", 10, 5000) is None


SPEC = {
    "fixed": {"model": "mlp", "epochs": 8},
    "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
    "refit": True,
}


def test_a_budget_reserves_the_refits_epochs_and_refuses_one_it_cannot_hold():
    spec = parse_spec({**SPEC, "budget": {"epochs": 100}})
    assert spec.refit_epochs() == 10  # 8 epochs on 1 / 0.8 as many images
    assert spec.search_budget() == 90
    assert parse_spec({**SPEC, "refit": False, "budget": {"epochs": 100}}).search_budget() == 100
    with pytest.raises(SpecError, match=r"refit: up to 8 epochs .* reserve 10 trial-epochs.*budget.epochs \(10\)"):
        parse_spec({**SPEC, "budget": {"epochs": 10}})


def test_a_refit_share_stretches_the_refit_to_the_time_left_never_below_its_source_nor_past_the_cap():
    run = plan_refit([_trial("a", 0.7), _trial("b", 0.8, lr=0.2)], "val_acc", "max")
    assert run.epochs == 6  # onecycle: the source's full schedule
    rates = [100.0, 200.0, 400.0]  # images per second: 5,000 images take 25 s, 26.25 s with the margin
    longer = stretched(run, 300.0, rates, 5000, cap=500)
    assert longer.epochs == 11 and longer.config["epochs"] == 11  # 300 // 26.25
    assert longer.config["lr"] == 0.2 and longer.source_id == "b"  # the same configuration, trained longer
    assert "its 300 s of the time budget" in longer.why and "its source trained 6" in longer.why
    assert stretched(run, 300.0, rates, 5000, cap=8).epochs == 8  # CIFAR_SWEEPS_MAX_EPOCHS
    assert stretched(run, 60.0, rates, 5000, cap=500) is run  # 2 epochs fit: never fewer than the source's
    assert stretched(run, 300.0, [], 5000, cap=500) is run  # no epoch measured: as it was
    assert stretched(run, -5.0, rates, 5000, cap=500) is run  # the budget already spent
    faster = stretched(run, 300.0, rates, 5000, cap=500, speedup=(1.5, "1.50x with 2 threads (probed)"))
    assert faster.epochs == 17 and "1.50x with 2 threads" in faster.why  # 300 // (26.25 / 1.5)


def test_the_refits_speedup_comes_from_two_probes_of_its_shape_bounded_by_its_threads(tmp_path):
    """The refit runs alone with every slot's CPUs: two probes of its shape (kept in the
    cache, so none runs here) say how much faster than a trial; never below 1, never more
    than the ratio of threads, and nothing on a GPU or with no more threads."""
    from cifar_sweeps.analysis.throughput import key_of, remember, thread_speedup

    cache = tmp_path / "throughput.json"
    one = {"model": "tinynet", "batch_size": 64, "threads": 1, "device": "cpu"}

    def kept(images_per_s_1: float, images_per_s_2: float) -> None:
        for threads, ips in ((1, images_per_s_1), (2, images_per_s_2)):
            remember(
                cache,
                key_of({**one, "threads": threads}),
                {"train_images_per_s": ips, "eval_images_per_s": 1e4, "peak_mb": 100},
            )

    kept(1000.0, 1600.0)
    speedup, why = thread_speedup(one, 2, cache)
    assert speedup == pytest.approx(1.6**0.5) and "with 2 threads instead of 1 (probed 1.60x)" in why
    kept(1000.0, 4900.0)
    assert thread_speedup(one, 2, cache)[0] == 2.0  # no more than twice the threads
    kept(1000.0, 900.0)
    assert thread_speedup(one, 2, cache)[0] == 1.0  # more threads that slow it: the trial's own rate
    assert thread_speedup({**one, "device": "cuda"}, 2, cache) is None
    assert thread_speedup(one, 1, cache) is None


def test_a_refit_share_stops_the_search_at_the_rest_of_the_budget():
    trials, rates = [_trial("a", 0.7)], [200.0]  # the estimate: 6 epochs of 5,000 images, 157.5 s
    own = RefitReserve("val_acc", "max", 10, 5000)
    shared = RefitReserve("val_acc", "max", 10, 5000, share=0.5)
    assert own.search_over(trials, rates, 300.0, 600.0) is None  # 300 + 157.5 < 600: the search goes on
    assert shared.search_over(trials, rates, 300.0, 600.0) == pytest.approx(300.0)  # half of 600 s is the refit's
    assert shared.search_over(trials, rates, 299.0, 600.0) is None
    assert shared.search_over([], [], 300.0, 600.0) == pytest.approx(300.0)  # before any epoch, too
    assert shared.search_over(trials, rates, 400.0, 1000.0) is None  # a longer budget: the search goes on
    assert RefitReserve("val_acc", "max", 10, 5000, share=0.1).search_over(trials, rates, 450.0, 600.0) == (
        pytest.approx(5000 * 6 / 200 * REFIT_MARGIN)  # the estimate when it is more than the share
    )


def test_a_refit_share_needs_a_refit_and_a_time_budget_and_the_plan_keeps_it():
    with pytest.raises(SpecError, match=r"refit_share: .* needs time_budget_s"):
        parse_spec({**SPEC, "refit_share": 0.5})
    with pytest.raises(SpecError, match=r"refit_share: .* needs refit"):
        parse_spec({**SPEC, "refit": False, "refit_share": 0.5, "time_budget_s": 600})
    with pytest.raises(SpecError, match="refit_share"):
        parse_spec({**SPEC, "refit_share": 1.0, "time_budget_s": 600})
    res = PlanResources(cpus=2, gpus=0, memory_mb=8000, source="test")
    tp = Throughput(seconds_per_epoch=10.0, peak_mb=100.0, source="given")
    spec = parse_spec({**SPEC, "num_samples": 4, "time_budget_s": 600, "refit_share": 0.4})
    plan = make_plan(spec, "synthetic:1000", None, None, res, throughput=tp)
    assert plan.refit_s == pytest.approx(240.0)  # 40 % of 600 s, more than its own 8 epochs' 81.3 s
    assert any("refit_share keeps the last 40% of time_budget_s (240 s)" in c for c in plan.cuts)


def test_the_plan_counts_the_refit_alone_after_the_search_on_every_image():
    res = PlanResources(cpus=2, gpus=0, memory_mb=8000, source="test")
    tp = Throughput(seconds_per_epoch=10.0, peak_mb=100.0, source="given")  # a search epoch: 800 + 200 images
    spec = {**SPEC, "num_samples": 4, "max_concurrent_trials": 2, "scheduler": {"type": "fifo"}}
    with_refit = make_plan(parse_spec(spec), "synthetic:1000", None, None, res, throughput=tp)
    without = make_plan(parse_spec({**spec, "refit": False}), "synthetic:1000", None, None, res, throughput=tp)
    assert with_refit.refit_trial_epochs == 10 and without.refit_trial_epochs == 0
    assert with_refit.trial_epochs.expected == without.trial_epochs.expected + 10
    start = 1.3  # its process, model and checkpoints beyond its epochs (plan.TRIAL_START_S)
    assert with_refit.refit_s == pytest.approx(8 * 10.0 + start) and without.refit_s == 0  # 8 epochs of 1,000
    assert with_refit.wall_s_expected == pytest.approx(without.wall_s_expected + 80.0 + start)  # alone: one slot
    assert with_refit.wall_s_worst == pytest.approx(without.wall_s_worst + 80.0 + start)
    subset = {**spec, "data": {"train_subset": 200}}  # the search sees 200 + 200 images an epoch, the refit 1,000
    plan = make_plan(parse_spec(subset), "synthetic:1000", None, None, res, throughput=tp)
    assert plan.refit_s == pytest.approx(8 * 10.0 * 1000 / 400 + start)
    # A measured training rate (a probe's) counts the refit's training alone: 1,000 images at 0.02 s each
    measured = Throughput(seconds_per_epoch=10.0, peak_mb=100.0, source="probe", train_s_per_image=0.02)
    plan = make_plan(parse_spec(subset), "synthetic:1000", None, None, res, throughput=measured)
    assert plan.refit_s == pytest.approx(8 * 1000 * 0.02 + start)


def test_the_refit_trains_on_every_training_and_validation_image_and_is_tested_once_at_its_end():
    splits = split_train_val(synthetic(200, 40), 0.25)
    merged = with_validation_in_training(splits)
    assert merged.sizes == {"train": 200, "val": 0, "test": 40}
    assert sorted(merged.y_train.tolist()) == sorted([*splits.y_train.tolist(), *splits.y_val.tolist()])
    trainer = Trainer(TrainConfig(model="mlp", epochs=3, batch_size=32, threads=1), merged, test_epochs=frozenset())
    tested = []
    result = trainer.run(lambda m, t: tested.append(m.test_acc))
    assert tested[:2] == [None, None] and tested[2] is not None  # once, at the last epoch
    assert result.best_epoch == 3 and result.test_acc == tested[2]
