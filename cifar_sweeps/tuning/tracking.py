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
    key_file: str | None = None  # set on a subclass per callback: where the W&B key lies

    def run(self):
        if self.key_file and self.kwargs.get("mode") == "online":
            # The key goes to wandb.init's own settings, read here from its 0600 file: never
            # an environment variable of this actor, its runtime env, or W&B's service.
            import wandb

            key = Path(self.key_file).read_text().strip()
            self.kwargs["settings"] = wandb.Settings(api_key=key)
        super().run()
        self._wandb.teardown()  # returns once the service has closed every run and exited


class SweepWandbCallback(WandbLoggerCallback):
    """Ray's callback, except for the key: Ray's copies WANDB_API_KEY from the driver's
    environment into each logging actor's runtime env (which the dashboard shows); this one
    gives the actors only the path of a key file (Settings.wandb_api_key, written 0600)."""

    _logger_actor_cls = _ClosingWandbActor

    def __init__(self, *args, key_file: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_file = key_file

    def setup(self, *args, **kwargs):
        # Ray's setup puts the key into this process's environment (_set_api_key): not here.
        from ray.air.integrations.wandb import _get_wandb_project

        self.project = _get_wandb_project(self.project)
        if not self.project:
            raise ValueError("W&B logging needs a project (CIFAR_SWEEPS_WANDB_PROJECT)")

    def _start_logging_actor(self, trial, exclude_results, **wandb_init_kwargs):
        import ray
        from ray.air.integrations.wandb import _force_on_current_node

        if not self._remote_logger_class:  # as Ray's, with no env vars in the runtime env
            actor = type("_SweepWandbActor", (_ClosingWandbActor,), {"key_file": self.key_file})
            self._remote_logger_class = ray.remote(
                num_cpus=0, **_force_on_current_node(), max_restarts=-1, max_task_retries=-1
            )(actor)
        super()._start_logging_actor(trial, exclude_results, **wandb_init_kwargs)

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
    itself: the logging actors may run on cluster nodes that don't see this environment. An
    online run's key is written to a 0600 file in the results folder (the logging actors run
    on this node) and read by the actors alone."""
    key_file = None
    if settings.wandb_api_key is not None and settings.resolved_wandb_mode() == "online":
        from cifar_sweeps.settings import write_secrets

        key = settings.wandb_api_key.get_secret_value()
        key_file = str(write_secrets(settings.results_dir, {"wandb_api_key": key}) / "cifar_sweeps_wandb_api_key")
    return SweepWandbCallback(
        project=settings.wandb_project,
        group=group,
        log_config=True,
        mode=settings.resolved_wandb_mode(),
        key_file=key_file,
    )
