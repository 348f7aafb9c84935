"""The refit end to end, on a real Ray head and synthetic data: a sweep with `refit: true`
ends in a refit row linked to its best trial, trained on the training and validation images
(its image count says so) and tested once; its driver SIGKILLed during the refit and the
sweep resumed with `cifar-sweeps resume`, the refit finishes from its checkpoint and no
search trial trains again."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from cifar_sweeps.analysis.ranking import group_trials
from tests.helpers.sweeps import open_store, run_cli, spawn_run, sweep_env, trial_results, wait_for, write_spec

pytestmark = pytest.mark.slow
EPOCHS = 8
N_IMAGES = 3000  # synthetic: spawn_run's data; 20 % of them validate the search's trials


def _search_epochs(results: Path, sweep_id: str) -> dict[str, int]:
    """Each search trial's reported epochs in Tune's folders, over every driver's run."""
    return {
        d.name: len(trial_results(d))
        for d in (results / "ray" / sweep_id).glob("trial_*")
        if (d / "result.json").exists()
    }


def test_a_refit_is_linked_trained_on_every_image_tested_once_and_resumes_after_a_kill(ray_head, tmp_path):
    results = tmp_path / "results"
    spec = write_spec(
        tmp_path,
        num_samples=2,  # one round of two concurrent trials; the refit trains the better one again
        refit=True,
        # cosine: a schedule shaped by the run's length, so the refit trains its full EPOCHS
        fixed={"model": "mlp", "epochs": EPOCHS, "batch_size": 16, "lr_schedule": "cosine"},
    )
    env = sweep_env(ray_head, results)
    store = open_store(results)
    driver = spawn_run(spec, env)
    try:
        # The refit's row, once it has checkpoints (every epoch is one) and epochs to go; a
        # second more, so that Tune's experiment snapshot (every 0.5 s) holds a checkpoint.
        sweep_id, (refit,) = wait_for(
            store, lambda ts: [t for t in ts if t.refit_of and 2 <= t.epochs < EPOCHS - 2], timeout=600, poll=0.02
        )
        time.sleep(1.0)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)
    finally:
        if driver.poll() is None:
            driver.kill()
    before = _search_epochs(results, sweep_id)
    assert store.get_trial(refit.id).status == "running" and store.get_trial(refit.id).epochs < EPOCHS

    done = run_cli(["resume", sweep_id], env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "refit: resumed from its checkpoint" in done.stdout, done.stdout[-3000:]
    assert store.sweep(sweep_id).status == "succeeded"
    assert _search_epochs(results, sweep_id) == before  # no search trial trained again

    trials = store.trials(sweep_id)
    row = store.get_trial(refit.id)
    search = [t for t in trials if t.refit_of is None]
    best = max(group_trials(search, "val_acc", "max")[0].trials, key=lambda t: t.val_acc)
    assert row.refit_of == best.id and row.tune_trial_id == "refit"
    assert row.status == "terminated" and row.epochs == EPOCHS and row.best_epoch == EPOCHS
    assert row.val_acc == best.val_acc  # its configuration's, from the search: it has no validation images
    assert {k: v for k, v in row.config.items() if k != "test_on_best"} == best.config
    # Training + validation images: every image of the search's two splits.
    assert {t.train_images for t in search} == {N_IMAGES * 4 // 5}
    assert row.train_images == N_IMAGES
    assert all(e.val_acc is None for e in store.epochs(row.id)) and len(store.epochs(row.id)) == EPOCHS

    # Tested once, at its end; resumed from its checkpoint, not from its first epoch.
    (refit_dir,) = (results / "ray" / f"{sweep_id}-refit").glob("trial_*")
    reported = trial_results(refit_dir)
    assert [r["epoch"] for r in reported].count(1) == 1, [r["epoch"] for r in reported]
    assert [r["epoch"] for r in reported if "test_acc" in r] == [EPOCHS]
    assert row.test_acc == reported[-1]["test_acc"]

    # The sweep's model is the refit: first on its leaderboard (CLI), and its best trial.
    board = run_cli(["leaderboard", "--sweep", sweep_id, "--json"], env)
    items = json.loads(board.stdout)["items"]
    assert items[0]["trial_id"] == row.id and items[0]["refit_of"] == best.id
    assert items[0]["train_images"] == N_IMAGES and items[1]["val_acc"] == best.val_acc  # beside its source
    table = run_cli(["leaderboard", "--sweep", sweep_id], env).stdout
    assert f"refit of {best.id} on {N_IMAGES} images" in table
