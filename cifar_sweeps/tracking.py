"""Weights & Biases logging of every trial, through Ray Tune's WandbLoggerCallback.

Each trial logs from a small Ray actor into the trial's folder on the driver node, and
Tune copies those folders to the sweep's storage. Two gaps in that path lose the runs
that end last (their offline run file stays at its 7-byte header):
- `wandb.finish()` returns before W&B's service process has written and closed the run,
  and Ray kills the actor (and the service with it) as soon as finish returns;
- Tune's last copy to storage runs before the callbacks' end-of-experiment hook, which
  is where Ray waits for the last runs to close.
So the actor here waits for the service to shut down, and the callback copies each
trial's W&B folder once more after the wait.
"""

from __future__ import annotations

from pathlib import Path

from ray.air.integrations.wandb import WandbLoggerCallback, _WandbLoggingActor

from cifar_sweeps.settings import Settings


class _ClosingWandbActor(_WandbLoggingActor):
    def run(self):
        super().run()
        self._wandb.teardown()  # returns once the service has closed every run and exited


class SweepWandbCallback(WandbLoggerCallback):
    _logger_actor_cls = _ClosingWandbActor

    def on_experiment_end(self, trials: list, **info) -> None:
        super().on_experiment_end(trials, **info)  # returns once every run is closed
        for trial in trials:
            upload_wandb_folder(trial)


def upload_wandb_folder(trial) -> None:
    """Copies the trial's local `wandb/` folder to its storage (local path or URI)."""
    import pyarrow.fs

    local = Path(trial.local_path) / "wandb"
    storage = trial.storage
    dest = f"{storage.trial_fs_path}/wandb"
    if not local.is_dir() or (storage.storage_filesystem.type_name == "local" and Path(dest) == local):
        return
    pyarrow.fs.copy_files(
        str(local),
        dest,
        source_filesystem=pyarrow.fs.LocalFileSystem(),
        destination_filesystem=storage.storage_filesystem,
    )


def wandb_callback(settings: Settings, group: str) -> SweepWandbCallback:
    """Offline (no account needed) unless a key is given. The mode goes to wandb.init
    itself: the logging actors may run on cluster nodes that don't see this environment."""
    return SweepWandbCallback(
        project=settings.wandb_project, group=group, log_config=True, mode=settings.resolved_wandb_mode()
    )
