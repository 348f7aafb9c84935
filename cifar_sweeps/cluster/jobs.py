"""Ray Jobs: submit, stop and follow sweeps (connection.py finds or starts the cluster).

A sweep submitted through the API runs as the Ray job `python -m cifar_sweeps.usecases.drive
run ID` (the drive use case; `resume ID` to resume it). The driver reads its spec from the
store, so nothing but the sweep id has to travel to the cluster.
"""

from __future__ import annotations

import shlex
import sys
import threading
import time
from collections.abc import Callable

from cifar_sweeps.cluster.connection import dashboard_up, dashboard_url, is_local_url, use_token_auth_if_needed
from cifar_sweeps.errors import RayUnavailable
from cifar_sweeps.settings import SECRETS_DIR_ENV, Settings, write_secrets
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import Store
from cifar_sweeps.store.states import ACTIVE, SweepStatus
from cifar_sweeps.store.tables import Sweep

# The module a sweep's Ray job runs (usecases/drive.py): named, never imported, by this layer.
DRIVER_MODULE = "cifar_sweeps.usecases.drive"


def entrypoint(verb: str, sweep_id: str, shared: bool) -> str:
    """The Ray job's command line: this interpreter where the cluster shares this machine's
    paths (its Python has this package), the cluster's `python` otherwise."""
    python = shlex.quote(sys.executable) if shared else "python"
    return f"{python} -m {DRIVER_MODULE} {verb} {shlex.quote(sweep_id)}"


# Seconds a job must stay unknown to a cluster that answers before its sweep is reconciled.
UNKNOWN_CONFIRM_S = 3.0


def job_not_found(e: Exception) -> bool:
    """Whether Ray's Jobs SDK said the job is unknown: its error reads "Request failed with
    status code 404: Job ... does not exist". A bare "404" is not enough: a connection error
    names the dashboard's port, and a port such as 40461 holds one."""
    msg = str(e)
    return "status code 404" in msg or "does not exist" in msg


class Jobs:
    """Submits sweeps as Ray jobs and keeps the store's sweep status in step with them."""

    def __init__(self, settings: Settings, store: Store, clock: Callable[[], float] = time.monotonic):
        self.settings, self.store = settings, store
        self.clock = clock  # seconds, for the graces below (a test passes its own)
        self.url = dashboard_url(settings)
        self._client = None
        self._lock = threading.Lock()  # one submitter at a time: the running-sweeps cap holds
        self._unreachable_since: float | None = None  # clock() of the first failed sync
        self._unknown_since: dict[str, float] = {}  # job id -> clock() when the cluster first denied it

    # ------------------------------------------------------------ Ray client

    def client(self):
        from ray.job_submission import JobSubmissionClient

        if self._client is None:
            if not dashboard_up(self.url):
                raise RayUnavailable(f"the Ray cluster's Jobs API at {self.url} is not reachable")
            use_token_auth_if_needed(self.url)
            try:
                self._client = JobSubmissionClient(self.url)
            except Exception as e:
                raise RayUnavailable(f"the Ray cluster's Jobs API at {self.url} is not reachable ({e})") from e
        return self._client

    def reachable(self) -> bool:
        return dashboard_up(self.url)

    def _runtime_env(self) -> dict:
        """What a job's driver needs, and no secret: the Jobs API and the dashboard show a
        job's runtime env to anyone who reaches them. Every setting travels as its variable
        (Settings.job_env); the secrets go to files of this user's that the driver reads."""
        shared = self.shares_paths()
        env, secrets = self.settings.job_env(shared_paths=shared)
        env["PYTHONUNBUFFERED"] = "1"
        # Secrets travel as files of this machine: a driver on it reads them. A cluster apart
        # can't, and gets none: its driver reads the store password and the W&B key from its
        # own environment or a mounted secret (docs/cluster.md), never the job's runtime env.
        if self.settings.cluster_secrets_dir:  # mounted on every Ray pod: no copy is written
            env[SECRETS_DIR_ENV] = self.settings.cluster_secrets_dir
        elif secrets and shared:
            env[SECRETS_DIR_ENV] = str(write_secrets(self.settings.results_dir, secrets))
        return {"env_vars": env}

    def shares_paths(self) -> bool:
        """Whether the cluster's drivers see this machine's paths (Settings.cluster_paths)."""
        mode = self.settings.cluster_paths
        if mode != "auto":
            return mode == "shared"
        return is_local_url(self.url)

    def _submit(self, sweep_id: str, verb: str) -> str:
        entry = entrypoint(verb, sweep_id, self.shares_paths())
        try:
            return self.client().submit_job(
                entrypoint=entry, runtime_env=self._runtime_env(), metadata={"cifar_sweeps_sweep": sweep_id}
            )
        except RayUnavailable:
            raise
        except Exception as e:
            self._client = None
            raise RayUnavailable(f"submitting to the Ray Jobs API at {self.url} failed: {e}") from e

    def running_count(self) -> int:
        return self.store.count_submitted_active()

    # ------------------------------------------------------------ verbs

    def create(self, spec: dict, code_version: str, plan: dict | None = None) -> Sweep:
        """Store a sweep (with its plan) and submit it, or leave it queued when the running cap
        is reached. Raises RayUnavailable (and stores nothing) when the cluster can't be reached."""
        self.client()
        sweep = self.store.create_sweep(spec, self.settings.data, code_version, plan=plan)
        try:
            self.drain()
        except RayUnavailable:
            self.store.delete_sweep(sweep.id)  # nothing half-stored: the user can submit again
            raise
        return self.store.get_sweep(sweep.id)

    def drain(self) -> int:
        """Submit queued sweeps while fewer than max_running_sweeps are running."""
        submitted = 0
        with self._lock:
            while self.running_count() < self.settings.max_running_sweeps:
                nxt = self.store.next_queued()
                if nxt is None:
                    break
                verb = "resume" if nxt.experiment_path else "run"
                job_id = self._submit(nxt.id, verb)
                self.store.update_sweep(nxt.id, ray_job_id=job_id)
                submitted += 1
        return submitted

    def resume(self, sweep: Sweep) -> Sweep:
        self.client()
        lifecycle.requeue(self.store, sweep.id)
        self.drain()
        return self.store.get_sweep(sweep.id)

    def stop(self, sweep: Sweep) -> Sweep:
        lifecycle.request_stop(self.store, sweep.id)
        return self.store.get_sweep(sweep.id)

    # ------------------------------------------------------------ status

    def sync(self, sweep: Sweep) -> Sweep:
        """Correct a sweep whose job ended without the driver saying so (killed, crashed):
        the lifecycle reconciles it with the job's state."""
        if sweep.status not in ACTIVE or not sweep.ray_job_id:
            return sweep
        try:
            info = self.client().get_job_info(sweep.ray_job_id)
            self._unreachable_since = None
        except RayUnavailable:
            return self._cluster_silent(sweep)
        except Exception as e:
            if not job_not_found(e):
                # The client was made while the cluster was up: a head gone since shows
                # here as a connection error.
                return sweep if dashboard_up(self.url) else self._cluster_silent(sweep)
            info = None  # the cluster does not know the job (it was restarted)
            if not self._unknown_for_sure(sweep.ray_job_id):
                return sweep
        self._unknown_since.pop(sweep.ray_job_id, None)
        status = None if info is None else str(getattr(info.status, "value", info.status))
        message = "" if info is None else (info.message or "")[-2000:]
        fresh = self.store.get_sweep(sweep.id)  # the driver may have just written its end
        lifecycle.reconcile(self.store, fresh, status, message)
        return self.store.get_sweep(sweep.id)

    def _unknown_for_sure(self, job_id: str) -> bool:
        """A job the cluster says it does not know, still unknown UNKNOWN_CONFIRM_S later with
        the dashboard up. A head that is dying answers "no such job" for a moment before it
        stops answering at all: that is a lost cluster, not an unknown job."""
        now = self.clock()
        first = self._unknown_since.setdefault(job_id, now)
        return now - first >= UNKNOWN_CONFIRM_S and dashboard_up(self.url)

    def _cluster_silent(self, sweep: Sweep) -> Sweep:
        """The cluster does not answer. A head that is gone takes its job drivers with it:
        past `cluster_lost_after_s` of silence the sweep is interrupted, naming the cluster,
        rather than left `running` for ever (resume it once a head is up)."""
        now = self.clock()
        self._client = None
        if self._unreachable_since is None:
            self._unreachable_since = now
        silent = now - self._unreachable_since
        if silent < self.settings.cluster_lost_after_s:
            return sweep
        lifecycle.reconcile_lost_cluster(
            self.store,
            sweep,
            f"the Ray cluster at {self.url} has not answered for "
            f"{silent:.0f} s: its head is gone, and the sweep's driver with it; "
            "resume the sweep once a head is up",
        )
        return self.store.get_sweep(sweep.id)

    def sync_all(self) -> None:
        rows, _ = self.store.list_sweeps(limit=1000, status=SweepStatus.RUNNING)
        queued, _ = self.store.list_sweeps(limit=1000, status=SweepStatus.QUEUED)
        for sweep in rows + queued:
            self.sync(sweep)
