"""Training a trial on (`cifar-sweeps continue`): the Trainer goes on from another run's last
state with a new segment of a length-shaped schedule, and a continuation resumed mid-way is
the same run; the refusals name what can't be continued, and nothing is written then."""

from __future__ import annotations

import io

import pytest
import torch

from cifar_sweeps.training.train import TrainConfig, Trainer
from tests.helpers.jobs import app_with_token
from tests.helpers.specs import AUTH
from tests.helpers.specs import ONE_AT_A_TIME as SPEC


def _cfg(**kw) -> TrainConfig:
    base = dict(model="mlp", epochs=3, batch_size=32, lr=0.05, seed=0, threads=1)
    return TrainConfig(**{**base, **kw})


def _trained(splits, **kw) -> Trainer:
    t = Trainer(_cfg(**kw), splits)
    t.run()
    return t


def _saved(t: Trainer) -> dict:
    """The trainer's state as a file gives it back (state_dict shares live tensors)."""
    buf = io.BytesIO()
    torch.save(t.state_dict(), buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _weights(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in t.model.state_dict().items()}


def test_a_continuation_starts_from_the_last_weights_and_counts_on(tiny_splits):
    source = _trained(tiny_splits, lr_schedule="onecycle")
    cont = Trainer(_cfg(lr_schedule="onecycle", epochs=5), tiny_splits)
    cont.continue_from(_saved(source))
    assert cont.epoch == 3 and cont.history == [] and cont.best_epoch == 0
    assert all(torch.equal(a, b) for a, b in zip(_weights(cont).values(), _weights(source).values(), strict=True))
    cont.run()
    assert [m.epoch for m in cont.history] == [4, 5] and cont.best_epoch in (4, 5)


def test_a_length_shaped_schedule_starts_a_new_segment(tiny_splits):
    """onecycle ended near zero; the continuation warms up and decays again over its epochs."""
    source = _trained(tiny_splits, lr_schedule="onecycle")
    end = source.opt.param_groups[-1]["lr"]
    cont = Trainer(_cfg(lr_schedule="onecycle", epochs=5), tiny_splits)
    cont.continue_from(_saved(source))
    cont.step_epoch()
    mid = cont.opt.param_groups[-1]["lr"]  # the segment's peak lies at 30 % of its steps: passed
    assert end < 1e-3 < 0.01 < mid <= 0.05
    cont.step_epoch()
    assert cont.opt.param_groups[-1]["lr"] < 1e-3  # the segment ends as the schedule ends


def test_a_decaying_schedule_goes_on_where_it_was(tiny_splits):
    source = _trained(tiny_splits, lr_schedule="exponential", gamma=0.5)
    cont = Trainer(_cfg(lr_schedule="exponential", gamma=0.5, epochs=5), tiny_splits)
    cont.continue_from(_saved(source))
    cont.run()
    assert [m.lr for m in source.history + cont.history] == pytest.approx([0.05 * 0.5**i for i in range(5)])


def test_a_continuation_resumed_midway_is_the_same_run(tiny_splits):
    """A continued trial's own checkpoint (a retry, a resumed sweep) restores its segment."""
    source = _trained(tiny_splits, lr_schedule="linear")
    whole = Trainer(_cfg(lr_schedule="linear", epochs=6), tiny_splits)
    whole.continue_from(_saved(source))
    whole.run()
    first = Trainer(_cfg(lr_schedule="linear", epochs=6), tiny_splits)
    first.continue_from(_saved(source))
    first.step_epoch()
    again = Trainer(_cfg(lr_schedule="linear", epochs=6), tiny_splits)
    again.load_state_dict(_saved(first))
    again.run()
    assert [m.lr for m in again.history] == pytest.approx([m.lr for m in whole.history])
    assert [m.epoch for m in again.history] == [4, 5, 6]
    for a, b in zip(_weights(again).values(), _weights(whole).values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_nothing_left_to_train_is_refused(tiny_splits):
    source = _trained(tiny_splits)
    with pytest.raises(ValueError, match="nothing is left"):
        Trainer(_cfg(epochs=3), tiny_splits).continue_from(_saved(source))


@pytest.fixture
def setup(tmp_path):
    return app_with_token(tmp_path)


def _ended_trial(store, tmp_path, status="terminated", state=True, refit_of=None):
    """An ended sweep with one trial of 2 epochs whose last checkpoint holds a state file."""
    from cifar_sweeps.store import lifecycle

    sweep = store.create_sweep(SPEC, "synthetic:100", "v")
    lifecycle.claim(store, sweep.id, "here", 1, str(tmp_path / sweep.id))
    tid = lifecycle.trial_started(
        store, sweep.id, "a1", {"model": "mlp", "epochs": 2, "lr": 0.01}, 2, refit_of=refit_of
    )
    for epoch in (1, 2):
        store.trial_epoch(
            tid,
            {"epoch": epoch, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5, "lr": 0.01}
            | {"seconds": 1.0, "images_per_s": 1.0},
        )
    ckpt = tmp_path / sweep.id / "trial_a1" / "checkpoint_000001"
    ckpt.mkdir(parents=True)
    (ckpt / "model.pt").write_bytes(b"m")
    if state:
        (ckpt / "state.pt").write_bytes(b"s")
    store.trial_checkpoint(tid, str(ckpt / "model.pt"))
    lifecycle.trial_ended(store, tid, status, "boom" if status == "errored" else None)
    lifecycle.stopped(store, sweep.id)
    return sweep.id, tid


def test_continue_queues_the_sweep_with_the_request(setup, tmp_path):
    client, store, settings = setup
    sweep_id, tid = _ended_trial(store, tmp_path)
    r = client.post(f"/trials/{tid}/continue", json={"epochs": 3}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "queued"
    assert store.sweep(sweep_id).spec["continues"] == [{"trial": tid, "epochs": 3}]


@pytest.mark.parametrize(
    "case,body,code,says",
    [
        ("ok", {"epochs": 0}, 422, "epochs"),
        ("ok", {"epochs": 3, "lr": 1}, 422, "lr"),
        ("ok", {"epochs": 499}, 422, "2; 499 more make 501, over the service's limit of 500"),
        ("errored", {"epochs": 3}, 409, "it is errored, and only a trial that ended well"),
        ("refit", {"epochs": 3}, 409, "it is its sweep's refit"),
        ("no state", {"epochs": 3}, 409, "its last state file is gone"),
        ("running", {"epochs": 3}, 409, "once the sweep has ended"),
    ],
)
def test_what_cant_be_continued_is_refused_and_nothing_changes(setup, tmp_path, case, body, code, says):
    from cifar_sweeps.store import lifecycle

    client, store, _ = setup
    sweep_id, tid = _ended_trial(
        store,
        tmp_path,
        status="errored" if case == "errored" else "terminated",
        state=case != "no state",
        refit_of="x" if case == "refit" else None,
    )
    if case == "running":
        lifecycle.requeue(store, sweep_id)
    before = store.sweep(sweep_id)
    r = client.post(f"/trials/{tid}/continue", json=body, headers=AUTH)
    assert r.status_code == code and says in r.text, r.text
    after = store.sweep(sweep_id)
    assert (after.status, after.spec) == (before.status, before.spec)


def test_continuing_by_the_same_epochs_twice_is_refused(setup, tmp_path):
    from cifar_sweeps.errors import SweepError
    from cifar_sweeps.store import lifecycle

    client, store, settings = setup
    sweep_id, tid = _ended_trial(store, tmp_path)
    lifecycle.trial_started(store, sweep_id, "a1-c3", {"model": "mlp", "epochs": 5, "lr": 0.01}, 5, continue_of=tid)
    with pytest.raises(SweepError, match="by 3 epochs again"):
        lifecycle.continue_trial(store, tid, 3, settings)
    assert client.post("/trials/sw-nope-x/continue", json={"epochs": 1}, headers=AUTH).status_code == 404
    assert client.post(f"/trials/{tid}/continue", json={"epochs": 1}).status_code == 401


def test_the_cli_refuses_with_the_message(tmp_path, capsys):
    from cifar_sweeps.cli import main
    from cifar_sweeps.settings import Settings
    from cifar_sweeps.store.queries import get_store

    store = get_store(Settings(results_dir=tmp_path).resolved_store_url())
    _, tid = _ended_trial(store, tmp_path, status="errored")
    assert main(["continue", tid, "--epochs", "2", "--results-dir", str(tmp_path)]) == 1
    assert "only a trial that ended well" in capsys.readouterr().err


def test_a_continued_trial_is_no_search_trial_for_the_refit_or_the_repeats():
    from types import SimpleNamespace

    from cifar_sweeps.analysis.ranking import plan_repeats
    from cifar_sweeps.tuning.refit import plan_refit

    def row(i, acc, continue_of=None):
        return SimpleNamespace(
            id=f"s-{i}", sweep_id="s", tune_trial_id=i, config={"lr": 0.1 if continue_of is None else 0.2, "seed": 0},
            status="terminated", val_acc=acc, test_acc=None, refit_of=None, repeat_of=None,
            continue_of=continue_of, best_epoch=2,
        )  # fmt: skip

    trials = [row("a", 0.5), row("a-c3", 0.9, continue_of="s-a")]
    assert plan_refit(trials, "val_acc", "max").source_id == "s-a"
    assert [r.source_id for r in plan_repeats(trials, 1, 2, "val_acc", "max")] == ["s-a"]
