from __future__ import annotations

import pytest
import torch

from cifar_sweeps.training.train import (
    LR_SCHEDULES,
    OPTIMIZERS,
    NonFiniteLossError,
    TrainConfig,
    Trainer,
    fit,
    load_model_file,
)
from tests.helpers.configs import train_config as _cfg


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_every_optimizer(tiny_splits, opt):
    lr = {"adadelta": 1.0, "adagrad": 0.05}.get(opt, 0.01 if opt == "sgd" else 0.001)
    r = fit(_cfg(optimizer=opt, lr=lr, epochs=2), tiny_splits)
    assert r.epochs_run == 2 and r.best_val_acc > 0.3


@pytest.mark.parametrize("sched", LR_SCHEDULES)
def test_every_lr_schedule(tiny_splits, sched):
    r = fit(_cfg(lr_schedule=sched, epochs=3, gamma=0.5, step_size=1), tiny_splits)
    lrs = [h.lr for h in r.history]
    if sched == "none":
        assert lrs == [0.01] * 3
    elif sched in ("exponential", "step"):
        assert lrs == pytest.approx([0.01, 0.005, 0.0025])
    else:
        assert lrs[0] != lrs[-1]


def test_learns_well_above_chance(tiny_splits):
    r = fit(_cfg(model="simple_cnn", epochs=4, batch_size=32, lr=0.01), tiny_splits)
    assert r.best_val_acc > 0.5 and r.test_acc is not None and r.test_acc > 0.5
    h = r.history[-1]
    # Whole-epoch train metrics: accuracy is a multiple of 1/len(train) (not of one batch).
    assert 0 <= h.train_acc <= 1 and h.train_loss > 0 and h.images_per_s > 0


def test_metrics_per_epoch(tiny_splits):
    seen = []
    fit(_cfg(epochs=2), tiny_splits, lambda m, t: seen.append(m))
    assert [m.epoch for m in seen] == [1, 2]
    for m in seen:
        keys = {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"}
        assert keys <= set(m.model_dump())


def test_save_restore_continue_matches_uninterrupted(tiny_splits, tmp_path):
    cfg = _cfg(model="simple_cnn", epochs=4, dropout=0.3, crop_padding=2, cutout=4, lr_schedule="cosine")
    full = Trainer(cfg, tiny_splits).run()

    first = Trainer(cfg, tiny_splits)
    first.step_epoch()
    first.step_epoch()
    torch.save(first.state_dict(), tmp_path / "state.pt")
    del first
    torch.manual_seed(1234)  # the process RNG moves on; restore must bring it back
    resumed = Trainer(cfg, tiny_splits)
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    rest = resumed.run()
    assert [h.val_acc for h in rest.history] == [h.val_acc for h in full.history]
    assert [h.train_loss for h in rest.history] == pytest.approx([h.train_loss for h in full.history], rel=1e-6)
    assert rest.test_acc == full.test_acc


def test_nan_loss_stops_with_specific_error(tiny_splits):
    with pytest.raises(NonFiniteLossError, match="NaN or infinite"):
        fit(_cfg(model="mlp", optimizer="sgd", lr=1e6, epochs=3), tiny_splits)


def test_best_model_file_loads(tiny_splits, tmp_path):
    t = Trainer(_cfg(epochs=2), tiny_splits)
    t.run()
    torch.save(t.best_model_file(), tmp_path / "m.pt")
    model = load_model_file(tmp_path / "m.pt")
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_bad_config_values():
    with pytest.raises(ValueError, match="greater than 0"):
        TrainConfig(lr=-0.1)
    with pytest.raises(ValueError, match="unknown model"):
        TrainConfig(model="nope")


def test_a_fast_net_at_a_width_round_trips_through_its_model_file(tiny_splits, tmp_path):
    t = Trainer(_cfg(model="airbench", width=0.25, depth=2, epochs=1, batch_size=16), tiny_splits)
    t.run()
    torch.save(t.best_model_file(), tmp_path / "m.pt")
    model = load_model_file(tmp_path / "m.pt")  # rebuilt at its own width and depth
    x = torch.randn(2, 3, 32, 32)
    t.model.load_state_dict(t.best_state)
    assert torch.allclose(model(x), t.model.eval()(x), atol=1e-5)


class _CountingTests:
    """Counts the evaluations of the test split (the trainer's `evaluate` on its test)."""

    def __init__(self, trainer: Trainer):
        self.epochs: list[int] = []
        inner = trainer.evaluate

        def evaluate(split):
            if split is trainer.test:
                self.epochs.append(trainer.epoch)
            return inner(split)

        trainer.evaluate = evaluate


def test_a_run_with_test_epochs_tests_its_best_there_and_at_its_last_epoch_only(tiny_splits):
    cfg = _cfg(model="simple_cnn", epochs=6, lr=0.01)
    every = Trainer(cfg, tiny_splits)
    counted_every = _CountingTests(every)
    every.run()
    best_at = {h.epoch: h.best_epoch for h in every.history}
    assert counted_every.epochs == [e for e, b in best_at.items() if b == e]  # each new best

    rungs = Trainer(cfg, tiny_splits, test_epochs=frozenset({2, 4}))
    counted = _CountingTests(rungs)
    seen = []
    rungs.run(lambda m, t: seen.append(m))
    # The same seed trains the same weights (testing draws no random numbers): a test point
    # tests only when the best changed since the previous one, and scores what the
    # every-best run scored for those weights.
    points = [2, 4, 6]
    expected = [e for i, e in enumerate(points) if i == 0 or best_at[e] != best_at[points[i - 1]]]
    assert counted.epochs == expected
    tested_best = None
    for m in seen:
        if m.epoch in points:
            tested_best = m.best_epoch
            assert m.test_acc == every.history[m.epoch - 1].test_acc
        elif m.best_epoch != tested_best:
            assert m.test_acc is None  # a best newer than the last test point: not tested yet
    assert seen[-1].test_acc is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (benchmarks/gpu_check.sh runs it)")
def test_a_state_loaded_onto_the_card_restores(tiny_splits, tmp_path):
    cfg = _cfg(model="simple_cnn", epochs=2, device="cuda")
    first = Trainer(cfg, tiny_splits)
    first.step_epoch()
    torch.save(first.state_dict(), tmp_path / "state.pt")
    resumed = Trainer(cfg, tiny_splits)
    # map_location="cuda" puts the RNG states on the card too: load_state_dict takes them back
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", map_location="cuda", weights_only=True))
    assert resumed.epoch == 1 and resumed.step_epoch().epoch == 2
