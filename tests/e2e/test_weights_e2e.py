"""Pretrained weights end to end on a real Ray head, with no network: `weights import` of a
stand-in ResNet-50 state dict, then a grid over simple_cnn and ImageNet-pretrained ResNet-50
whose ResNet trial starts from exactly the imported tensors; and the same sweep with nothing
staged fails before any trial, naming the commands that stage weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cifar_sweeps.training.models import backbone_sha256
from tests.helpers.ray_head import cli_env
from tests.helpers.sweeps import open_store, run_cli
from tests.helpers.weights import stand_in_resnet50

pytestmark = pytest.mark.slow

SPEC = {
    "name": "pretrained-grid",
    "metric": "best_val_acc",
    "mode": "max",
    "num_samples": 1,  # the grid once: two trials
    "max_concurrent_trials": 2,
    "search": {"algorithm": "grid"},
    "scheduler": {"type": "fifo"},
    "fixed": {"epochs": 1, "batch_size": 32, "normalize": "imagenet", "eval_batch_size": 128},
    "params": {"model": {"type": "choice", "values": ["simple_cnn", {"model": "resnet50", "pretrained": True}]}},
}


def test_imported_weights_reach_the_trial_through_the_object_store(ray_head, tmp_path):
    standin = stand_in_resnet50(seed=11)
    torch.save(standin, tmp_path / "resnet50-standin.pth")
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    env = cli_env(ray_head, tmp_path / "results", CIFAR_SWEEPS_WEIGHTS_DIR=str(tmp_path / "weights"))

    p = run_cli(["weights", "import", "resnet50", str(tmp_path / "resnet50-standin.pth")], env)
    assert p.returncode == 0, p.stderr
    p = run_cli(["run", str(tmp_path / "spec.json"), "--data", "synthetic:300"], env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "pretrained weights resnet50 loaded" in p.stdout

    store = open_store(tmp_path / "results")
    (sweep,), _ = store.list_sweeps()
    rows = store.trials(sweep.id)
    trials = {t.model: t for t in rows}
    assert sweep.status == "succeeded" and set(trials) == {"simple_cnn", "resnet50"} and len(rows) == 2
    assert all(t.status == "terminated" and t.epochs == 1 for t in trials.values())
    assert trials["resnet50"].config["pretrained"] is True and "pretrained" not in trials["simple_cnn"].config
    rn = torch.load(trials["resnet50"].checkpoint_path, weights_only=True)
    # The trial's backbone, hashed right after it was built, is exactly the imported tensors.
    assert rn["init_weights"] == backbone_sha256(standin)
    assert rn["normalize"] == "imagenet"
    assert torch.load(trials["simple_cnn"].checkpoint_path, weights_only=True)["init_weights"] is None


def test_no_staged_weights_fails_before_any_trial(ray_head, tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    env = cli_env(ray_head, tmp_path / "results", CIFAR_SWEEPS_WEIGHTS_DIR=str(tmp_path / "empty"))
    p = run_cli(["run", str(tmp_path / "spec.json"), "--data", "synthetic:300"], env)
    assert p.returncode != 0
    store = open_store(tmp_path / "results")
    (sweep,), _ = store.list_sweeps()
    assert sweep.status == "failed" and store.trials(sweep.id) == []
    assert "cifar-sweeps weights fetch resnet50" in sweep.error
    assert "cifar-sweeps weights import resnet50 FILE" in sweep.error
    assert str(Path(tmp_path / "empty")) in sweep.error
