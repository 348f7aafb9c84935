"""The Ray Tune adapter around the training loop: report, checkpoint, restore.

Each epoch becomes one `tune.report(metrics, checkpoint=...)`. A checkpoint holds the
trainer's full state (state.pt: resume continues at the next epoch with the same RNG
streams) and the best-validation weights so far (model.pt: what the leaderboard serves).
Because model.pt always holds the best weights so far, the latest checkpoint (which Ray
always keeps) is enough to serve the best model, whatever ASHA stops.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from cifar_sweeps.analysis.ranking import CONTINUE_FROM, CONTINUE_OF, REFIT_OF, REPEAT_ID, REPEAT_OF
from cifar_sweeps.cluster.connection import process_default
from cifar_sweeps.errors import InjectedFault
from cifar_sweeps.store.artifacts import MODEL_FILE, STATE_FILE
from cifar_sweeps.sweepspec.spaces import flatten_config
from cifar_sweeps.training.data import Splits
from cifar_sweeps.training.train import EpochMetrics, TrainConfig, Trainer, cost_metrics

# Keys of a trial config that steer the adapter, not the training loop.
ADAPTER_KEYS = ("fail_at_epoch", "fault", REPEAT_OF, REPEAT_ID, REFIT_OF, CONTINUE_OF, CONTINUE_FROM)


def trial_train_config(config: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
    """Split a Tune trial config into the TrainConfig and the adapter's own options."""
    flat = flatten_config(config)
    extra = {k: flat.pop(k) for k in ADAPTER_KEYS if k in flat}
    return TrainConfig(**flat), extra


def should_checkpoint(m: EpochMetrics, every: int, epochs: int) -> bool:
    return m.epoch % every == 0 or m.epoch == epochs or m.best_epoch == m.epoch


def report_metrics(m: EpochMetrics) -> dict[str, Any]:
    out = m.model_dump()
    if out["test_acc"] is None:
        out.pop("test_acc")
    return out


def _report(m: EpochMetrics, trainer: Trainer, every: int, cost: dict[str, float] | None = None) -> None:
    from ray import tune

    train_s = sum(h.seconds for h in trainer.history)  # this run's epochs (a restored run: its own)
    metrics = {
        **report_metrics(m),
        **(cost or {}),
        "train_s": train_s,
        "node_id": _node_id(),
        "train_images": len(trainer.train),
    }
    if not should_checkpoint(m, every, trainer.cfg.epochs):
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        torch.save(trainer.state_dict(), Path(d, STATE_FILE))
        torch.save(trainer.best_model_file(), Path(d, MODEL_FILE))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def _node_id() -> str:
    """The Ray node this trial runs on (the store records it per epoch)."""
    import ray

    return ray.get_runtime_context().get_node_id()


def _restore(trainer: Trainer, continue_from: str | None = None) -> None:
    """The trial's own last checkpoint (a retry, a resumed sweep); else, for a continuation,
    the last state of the trial it goes on from (Trainer.continue_from)."""
    from ray import tune

    ckpt = tune.get_checkpoint()
    if ckpt is None:
        if continue_from:
            trainer.continue_from(torch.load(continue_from, map_location="cpu", weights_only=True))
        return
    with ckpt.as_directory() as d:
        # weights_only: tensors, numbers, strings and containers only; a checkpoint folder
        # written by anything else can't run code in the trial (the state is plain data).
        state = torch.load(Path(d, STATE_FILE), map_location="cpu", weights_only=True)
        trainer.load_state_dict(state)
        # Population-based training restarts a trial from another's checkpoint with changed
        # params: they take effect in the restored optimizer (a plain resume changes nothing).
        trainer.retune(state.get("config", {}))


def _fault_hook(extra: dict[str, Any], trial_dir: str):
    """fail_at_epoch=k makes the trial fail once, right after epoch k is reported, with
    `fault` "raise" (a plain error) or "oom" (torch's CUDA out-of-memory error); a marker
    file in the trial folder keeps the retry from failing again."""
    k = extra.get("fail_at_epoch")
    kind = extra.get("fault", "raise")
    marker = Path(trial_dir, "injected_fault_done")

    def hook(m: EpochMetrics) -> None:
        if k is not None and m.epoch == k and not marker.exists():
            marker.write_text(str(k))
            if kind == "oom":
                raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (injected after epoch {k})")
            raise InjectedFault(f"injected fault after epoch {k}")

    return hook


def _say_if_no_cuda() -> None:
    """A trial Ray gave a GPU share to, in a process where CUDA is unavailable (a CPU-only
    torch, a node whose driver is missing, a GPU count set by hand): one line saying so."""
    import ray

    gpus = ray.get_gpu_ids()
    if gpus and not torch.cuda.is_available():
        print(
            f"trial {ray.tune.get_context().get_trial_id()}: Ray gave it GPU {gpus}, but CUDA is not available "
            "in this process (torch.cuda.is_available() is False), so it trains on the CPU",
            flush=True,
        )


def train_trial(
    config: dict[str, Any],
    splits: Splits,
    cpus_per_trial: float = 1.0,
    checkpoint_every: int = 1,
    weights: dict[str, dict[str, torch.Tensor]] | None = None,
    test_epochs: frozenset[int] | None = None,
) -> None:
    """The function trainable: one trial of a sweep. Torch threads = the trial's CPUs.
    `weights`: pretrained state dicts by model name, loaded once by the driver and shared
    through the object store like `splits`. `test_epochs`: where the scheduler may stop
    the trial (schedulers.decision_epochs): its best weights are tested there."""
    from ray import tune

    cfg, extra = trial_train_config(config)
    threads = max(1, int(cpus_per_trial))
    cfg = cfg.model_copy(update={"threads": threads})
    process_default("OMP_NUM_THREADS", str(threads))
    _say_if_no_cuda()
    pretrained = (weights or {}).get(cfg.model) if cfg.pretrained else None
    trainer = Trainer(cfg, splits, pretrained_state=pretrained, test_epochs=test_epochs)
    print(f"precision {trainer.precision} ({trainer.precision_why})", flush=True)
    _restore(trainer, extra.get(CONTINUE_FROM))
    fault = _fault_hook(extra, tune.get_context().get_trial_dir())

    cost: dict[str, float] = {}

    def on_epoch(m: EpochMetrics, t: Trainer) -> None:
        if not cost:  # once, after the first epoch: the model's size and its inference latency
            cost.update(cost_metrics(t))
        _report(m, t, checkpoint_every, cost)
        fault(m)

    trainer.run(on_epoch)
