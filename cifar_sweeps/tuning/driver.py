"""SweepSpec -> tune.Tuner, run and resume; the driver's store callback and stop signal.

The driver loads the data once and hands it to every trial through the Ray object store
(tune.with_parameters), so trials on a node share one read-only copy of the arrays.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.tune import Callback, Stopper

from cifar_sweeps.analysis.ranking import CONTINUE_FROM, CONTINUE_OF, REFIT_OF, REPEAT_ID, REPEAT_OF, plan_repeats
from cifar_sweeps.analysis.warm import warm_points
from cifar_sweeps.cluster.connection import init_ray, process_default
from cifar_sweeps.errors import NotFound, SweepError, TransitionError
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.artifacts import MODEL_FILE, check_results_writable, local_model_file
from cifar_sweeps.store.queries import Store, get_store
from cifar_sweeps.store.states import TRIAL_COMPLETED, Reason, TrialStatus
from cifar_sweeps.sweepspec.constraints import parse_all
from cifar_sweeps.sweepspec.schedulers import SCHEDULERS
from cifar_sweeps.sweepspec.schema import SweepSpec
from cifar_sweeps.sweepspec.spaces import flatten_config
from cifar_sweeps.training.data import Splits, dataset_name, load_splits, train_subset, with_validation_in_training
from cifar_sweeps.tuning import continued
from cifar_sweeps.tuning.live import LiveLimits, LiveSearch
from cifar_sweeps.tuning.refit import (
    REFIT_ID,
    plan_refit,
    refit_done,
    refit_is_stale,
    refit_row,
    refit_seconds,
    stretched,
    tune_config,
)
from cifar_sweeps.tuning.schedulers import decision_epochs, make_scheduler
from cifar_sweeps.tuning.searchers import make_search, param_space
from cifar_sweeps.tuning.tracking import wandb_callback
from cifar_sweeps.version import code_version

# ---------------------------------------------------------------- Ray runtime


def check_resources(spec: SweepSpec) -> None:
    import ray

    have = ray.cluster_resources()
    r = spec.resources_per_trial
    if r.gpu > 0 and have.get("GPU", 0) <= 0:
        raise SweepError(
            f"resources_per_trial.gpu is {r.gpu} but the Ray cluster has no GPU; set it to 0 "
            "to run on CPUs, or point RAY_ADDRESS at a cluster with GPUs"
        )
    if r.gpu > have.get("GPU", 0) and have.get("GPU", 0) > 0:
        raise SweepError(f"resources_per_trial.gpu is {r.gpu} but the cluster has {have['GPU']:g} GPUs")
    if r.cpu > have.get("CPU", 0):
        raise SweepError(f"resources_per_trial.cpu is {r.cpu:g} but the cluster has {have.get('CPU', 0):g} CPUs")


# ---------------------------------------------------------------- Tune pieces


def make_trainable(spec: SweepSpec, splits: Splits, weights: dict | None = None, refit: bool = False):
    """The trainable of the sweep's trials; `refit`: of its refit, which trains on the
    training and validation images, is checkpointed every epoch and tested at its end."""
    from ray import tune

    from cifar_sweeps.tuning.trainable import train_trial

    cpu, gpu = refit_resources(spec) if refit else (spec.resources_per_trial.cpu, spec.resources_per_trial.gpu)
    fn = tune.with_parameters(
        train_trial,
        splits=with_validation_in_training(splits) if refit else splits,
        cpus_per_trial=cpu,
        checkpoint_every=1 if refit else spec.checkpoint_every,
        weights=weights or {},
        test_epochs=frozenset() if refit else decision_epochs(spec),
    )
    return tune.with_resources(fn, {"cpu": cpu, "gpu": gpu})


def refit_resources(spec: SweepSpec) -> tuple[float, float]:
    """The refit runs alone after the search: it takes every slot's CPUs and GPUs (its trial's
    times max_concurrent_trials), as far as the cluster has them, and at least one trial's."""
    import ray

    have, r, n = ray.cluster_resources(), spec.resources_per_trial, spec.max_concurrent_trials
    cpu = max(r.cpu, min(r.cpu * n, float(have.get("CPU", r.cpu))))
    gpu = max(r.gpu, min(r.gpu * n, float(have.get("GPU", 0.0)))) if r.gpu else 0.0
    # One trial's GPUs below a whole card stay a fraction; whole cards stay whole.
    return cpu, (gpu if gpu < 1 else float(int(gpu)))


def make_callbacks(spec: SweepSpec, store: Store, sweep_id: str, settings: Settings) -> list:
    callbacks: list = [StoreCallback(store.url, sweep_id, spec.max_epochs())]
    if spec.wandb or settings.wandb:
        # The key stays in a file (tracking.py): never this process's environment, which
        # Ray's own callback would copy into every logging actor's runtime env.
        callbacks.append(wandb_callback(settings, group=sweep_id))
    return callbacks


def run_config(spec: SweepSpec, store: Store, sweep_id: str, settings: Settings, refit_images: int = 0):
    from ray import tune

    return tune.RunConfig(
        name=sweep_id,
        storage_path=str(settings.storage_root()),
        checkpoint_config=tune.CheckpointConfig(
            # pbt: every checkpoint, as a trial may copy another's from several epochs back,
            # which keeping the best k by val_acc could have deleted by then.
            num_to_keep=None if SCHEDULERS[spec.scheduler.type].keeps_every_checkpoint else spec.keep_checkpoints,
            checkpoint_score_attribute="val_acc",
            checkpoint_score_order="max",
        ),
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        callbacks=make_callbacks(spec, store, sweep_id, settings),
        stop=with_plateau(
            spec,
            StoreStopper(
                store.url,
                sweep_id,
                **_disk_watch(settings),
                budget_epochs=spec.search_budget(),
                refit_reserve=_refit_reserve(spec, refit_images),
                limits=live_limits(spec, store, sweep_id),
            ),
        ),
        verbose=1,
    )


def live_limits(spec: SweepSpec, store: Store, sweep_id: str) -> LiveLimits:
    return LiveLimits(store.url, sweep_id, spec.num_samples, spec.max_concurrent_trials, spec.time_budget_s)


def with_plateau(spec: SweepSpec, stopper: Stopper) -> Stopper:
    """The sweep's stopper, and Ray Tune's TrialPlateauStopper beside it when the spec asks
    (`stop.plateau`): a trial whose metric no longer moves ends, early-stopped."""
    plateau = spec.stop.plateau if spec.stop else None
    if plateau is None:
        return stopper
    from ray.tune.stopper import CombinedStopper, TrialPlateauStopper

    return CombinedStopper(
        stopper,
        TrialPlateauStopper(
            metric=plateau.metric, std=plateau.std, num_results=plateau.num_results, grace_period=plateau.grace_period
        ),
    )


def _refit_reserve(spec: SweepSpec, refit_images: int) -> RefitReserve | None:
    """Under a time budget (the one given, or one set while the sweep runs), the refit's
    share is kept: the search stops that much earlier."""
    if not spec.refit or not refit_images:
        return None
    return RefitReserve(spec.metric, spec.mode, spec.max_epochs(), refit_images, spec.refit_share)


def _disk_watch(settings: Settings) -> dict[str, Any]:
    """A running sweep stops when its local results disk falls under half the free space a
    sweep needs to start: room for the checkpoints already being written."""
    root = settings.storage_root()
    return {} if isinstance(root, str) else {"storage": str(root), "min_free_mb": settings.min_free_mb / 2}


TRIAL_DIR = "trial_"  # a trial's folder: TRIAL_DIR + Tune's trial id


def trial_name(trial) -> str:
    """Short, stable names (Tune's default folds the whole config into the folder name)."""
    return f"{TRIAL_DIR}{trial.trial_id}"


def build_tuner(
    spec: SweepSpec,
    splits: Splits,
    store: Store,
    sweep_id: str,
    settings: Settings,
    weights: dict | None = None,
    evaluated: list | None = None,
    refit_images: int = 0,
):
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    searcher = make_search(spec, evaluated)
    if searcher is not None and not isinstance(searcher, BasicVariantGenerator):
        # The trial count and concurrency the store holds now (live.py); a grid's and a pbt
        # population's are their own (Tune's draws: no searcher to gate).
        searcher = LiveSearch(searcher, live_limits(spec, store, sweep_id))
    return tune.Tuner(
        make_trainable(spec, splits, weights),
        param_space=param_space(spec),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=make_scheduler(spec, store.url, sweep_id),
            num_samples=spec.num_samples,
            max_concurrent_trials=spec.max_concurrent_trials if searcher is None else None,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
            # A new trial runs in an idle worker of a finished one: no process start and no
            # torch import per trial (seconds each on a small machine).
            reuse_actors=True,
        ),
        run_config=run_config(spec, store, sweep_id, settings, refit_images),
    )


# ---------------------------------------------------------------- driver-side callbacks


def _trial_config(config: dict[str, Any]) -> dict[str, Any]:
    return flatten_config(config)


def _tune_id(trial) -> str:
    """The trial's id in the store: Tune's, or a repeat's own stable one (the same row
    whichever driver runs it)."""
    return _trial_config(trial.config).get(REPEAT_ID) or trial.trial_id


@dataclass(frozen=True)
class RefitReserve:
    """A time budget's share kept for the refit (refit.refit_seconds estimates it)."""

    metric: str
    mode: str
    max_epochs: int
    refit_images: int  # the training and validation images it trains on
    share: float | None = None  # spec.refit_share: at least this share of the budget is the refit's

    def search_over(self, trials: list, rates: list[float], elapsed_s: float, budget_s: float) -> float | None:
        """The refit's time when the search must stop now to leave it that: its estimate, or
        its share of the budget if more; else None."""
        need = refit_seconds(trials, rates, self.metric, self.mode, self.max_epochs, self.refit_images)
        if self.share is not None:
            need = max(need or 0.0, self.share * budget_s)
        return need if need is not None and elapsed_s + need >= budget_s else None


class StoreStopper(Stopper):
    """Stops every trial when `stop` was asked for in the store (CLI or API), when the
    results disk runs low (both checked at most every 2 s so a sweep's hot loop does not
    hammer the database), when the sweep's epoch budget is spent, when its time budget is
    (the store's value now: `limits`, changed while it runs), or when what is left of that
    budget is the refit's share. Holds the store's URL, not a connection, so Tune can
    pickle it with the experiment state. The time counts from this driver's start, as
    Tune's own time_budget_s did: a resumed sweep has its budget again."""

    def __init__(
        self,
        store_url: str,
        sweep_id: str,
        every_s: float = 2.0,
        storage: str | None = None,
        min_free_mb: float = 0.0,
        budget_epochs: int | None = None,
        refit_reserve: RefitReserve | None = None,
        limits: LiveLimits | None = None,
    ):
        self.store_url, self.sweep_id, self.every_s = store_url, sweep_id, every_s
        self.storage, self.min_free_mb, self.budget_epochs = storage, min_free_mb, budget_epochs
        self.refit_reserve, self.limits = refit_reserve, limits
        self._t0: float | None = time.monotonic()  # a restored stopper starts at its first call
        self._last = 0.0
        self._stop = self._interrupted = False
        self._spent: set[tuple[str, int]] | None = None  # (Tune trial id, epoch) trained so far

    def __call__(self, trial_id: str, result: dict) -> bool:
        if self.budget_epochs is not None and "epoch" in result:
            self._count(trial_id, int(result["epoch"]))
        return self.stop_all()

    def _count(self, trial_id: str, epoch: int) -> None:
        """One more trial-epoch; the epochs recorded before (a resumed sweep) count too, and
        an epoch replayed after a restore counts once."""
        if self._spent is None:
            self._spent = get_store(self.store_url).epoch_keys(self.sweep_id)
        self._spent.add((trial_id, epoch))
        if len(self._spent) >= self.budget_epochs:
            self._stop = True

    def stop_all(self) -> bool:
        now = time.monotonic()
        if not self._stop and now - self._last > self.every_s:
            self._last = now
            self._stop = get_store(self.store_url).stop_requested(self.sweep_id)
            self._disk_low()
            self._out_of_time(now)
        return self._stop

    def __setstate__(self, state: dict) -> None:
        # A stopper pickled in a sweep's Tune state by the code before the refit has no
        # reserve: the resumed sweep runs as it was submitted.
        self.__dict__.update({"refit_reserve": None, "_t0": None, "limits": None, **state})

    def _out_of_time(self, now: float) -> None:
        """The time budget as the store holds it now: spent, or down to the refit's share."""
        budget = self.limits.now()[2] if self.limits is not None else None
        if self._stop or budget is None:
            return
        if self._t0 is None:
            self._t0 = now
        elapsed = now - self._t0
        if elapsed >= budget:
            self._stop = True
            print(f"search: the time budget of {budget:g} s is spent (time_budget_s)", flush=True)
            return
        if self.refit_reserve is None:
            return
        store = get_store(self.store_url)
        trials, rates = store.trials(self.sweep_id), store.training_rates(self.sweep_id)
        need = self.refit_reserve.search_over(trials, rates, elapsed, budget)
        if need is not None:
            self._stop = True
            print(
                f"search: stopped after {elapsed:.0f} s of the {budget:g} s budget, "
                f"leaving the refit its estimated {need:.0f} s",
                flush=True,
            )

    def _disk_low(self) -> None:
        """A disk that fills mid-sweep would fail every trial at its next checkpoint: say
        why in the store and interrupt the sweep the way Ctrl-C does (Tune saves its state
        and ends the run), so that `resume` continues it once space is freed."""
        if self._interrupted or not self.storage or self.min_free_mb <= 0:
            return
        try:
            free_mb = shutil.disk_usage(self.storage).free / 2**20
        except OSError:
            return
        if free_mb >= self.min_free_mb:
            return
        self._interrupted = True
        lifecycle.note(
            get_store(self.store_url),
            self.sweep_id,
            Reason.DISK_LOW,
            (
                f"interrupted: the results folder {self.storage} is down to {free_mb:.0f} MiB free (under "
                f"{self.min_free_mb:g} MiB); free some space, then resume the sweep"
            ),
        )
        signal.raise_signal(signal.SIGINT)  # Tune's handler: stop trials, save state, return

    def __getstate__(self):
        return {**self.__dict__, "_stop": False, "_last": 0.0, "_interrupted": False, "_spent": None, "_t0": None}


def _error_text(trial) -> str:
    try:
        if trial.error_file and Path(trial.error_file).exists():
            return Path(trial.error_file).read_text()[-8000:]
    except Exception:
        pass
    err = trial.get_error() if hasattr(trial, "get_error") else None
    return str(err) if err else "trial failed"


def checkpoint_uri(checkpoint) -> str:
    """Where the checkpoint's model file is: a local path, or scheme://path on a pyarrow
    filesystem (Tune's checkpoint.path drops the scheme)."""
    fs = getattr(checkpoint, "filesystem", None)
    kind = getattr(fs, "type_name", "local") if fs is not None else "local"
    path = f"{checkpoint.path}/{MODEL_FILE}"
    return path if kind == "local" else f"{kind}://{path}"


class StoreCallback(Callback):
    """Writes trials and per-epoch metrics to the store as they happen (in the driver).
    Holds the store's URL, not a connection, so it pickles with the experiment state and
    reconnects after a resume."""

    def __init__(self, store_url: str, sweep_id: str, max_t: int):
        self.store_url, self.sweep_id, self.max_t = store_url, sweep_id, max_t

    @property
    def store(self) -> Store:
        return get_store(self.store_url)

    def _id(self, trial) -> str:
        return f"{self.sweep_id}-{_tune_id(trial)}"

    def _budget(self, trial) -> int:
        return int(_trial_config(trial.config).get("epochs", self.max_t))

    def on_trial_start(self, iteration, trials, trial, **info):
        config = _trial_config(trial.config)
        repeat_of, refit_of = config.pop(REPEAT_OF, None), config.pop(REFIT_OF, None)
        continue_of = config.pop(CONTINUE_OF, None)
        config.pop(REPEAT_ID, None)
        config.pop(CONTINUE_FROM, None)
        lifecycle.trial_started(
            self.store, self.sweep_id, _tune_id(trial), config, self._budget(trial), repeat_of, refit_of, continue_of
        )

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "val_acc" in result:
            self.store.trial_epoch(self._id(trial), result)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self.store.trial_checkpoint(self._id(trial), checkpoint_uri(checkpoint))

    def on_trial_complete(self, iteration, trials, trial, **info):
        done = int((trial.last_result or {}).get("epoch", 0)) >= self._budget(trial)
        end = TrialStatus.TERMINATED if done else TrialStatus.EARLY_STOPPED
        lifecycle.trial_ended(self.store, self._id(trial), end)

    def on_trial_error(self, iteration, trials, trial, **info):
        lifecycle.trial_ended(self.store, self._id(trial), TrialStatus.ERRORED, _error_text(trial))


# ---------------------------------------------------------------- run / resume


def load_weights(spec: SweepSpec, settings: Settings) -> dict:
    """The pretrained weights the sweep's trials start from, loaded once here (a sweep that
    needs weights the driver can't find fails before any trial starts, saying how to stage them)."""
    from cifar_sweeps.sweepspec.schema import needs_pretrained
    from cifar_sweeps.training.weights import load_for

    models = needs_pretrained(spec)
    if not models:
        return {}
    t0 = time.perf_counter()
    weights = load_for(models, settings.weights_dir)
    print(
        f"pretrained weights {', '.join(weights)} loaded from {settings.weights_dir} "
        f"in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )
    return weights


def _load_data(spec: SweepSpec, source: str, settings: Settings, store: Store, sweep_id: str) -> tuple[Splits, Splits]:
    """The sweep's data, once: the search's splits (`data.train_subset` of the training
    images, a cheaper fidelity) and all of them (what a refit trains on); its data set's name
    and classes go to the sweep's row (the leaderboard ranks models within one data set)."""
    t0 = time.perf_counter()
    d = spec.data
    splits = load_splits(
        source, settings.cache_dir, d.val_fraction, d.split_seed, image_size=d.image_size, test_fraction=d.test_fraction
    )
    full, splits = splits, train_subset(splits, d.train_subset, d.split_seed)
    name = dataset_name(source, splits.classes, splits.image_size)
    store.update_sweep(sweep_id, dataset=name, classes=list(splits.classes))
    print(
        f"data {source}: {name}, {len(splits.classes)} classes at {splits.image_size}x{splits.image_size}, "
        f"{splits.sizes} loaded in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )
    return splits, full


def _finish(store: Store, sweep_id: str, results: list) -> tuple[str, str | None]:
    """The sweep's end, decided by the lifecycle from Tune's trials (of the search, and of
    the repeats if they ran); and its error."""
    unfinished = _unfinished(results)
    errored = sum(1 for res in results for r in res if r.error is not None)
    total = sum(len(r) for r in results)
    budget = (store.get_sweep(sweep_id).spec.get("budget") or {}).get("epochs")
    spent = budget is not None and len(store.epoch_keys(sweep_id)) >= budget
    status = lifecycle.driver_ended(store, sweep_id, unfinished, errored, total, budget_spent=spent)
    return status, store.get_sweep(sweep_id).error


def _unfinished(results: list) -> int:
    """How many of the fits' Tune trials had not ended when they returned."""
    return sum(1 for r in results for t in _tune_trials(r) if not t.is_finished())


def _tune_trials(results) -> list:
    """Tune's Trial objects of the fit (each knows whether it ended: a fit that returned on
    Ctrl-C/SIGTERM leaves some unfinished), or [] where the ResultGrid does not hold them."""
    try:
        return list(results._experiment_analysis.trials)
    except AttributeError:
        return []


def run_sweep(
    spec: SweepSpec, settings: Settings, store: Store, data_source: str, sweep_id: str | None = None, plan=None
) -> str:
    """Run a sweep to the end in this process (the driver); returns the sweep id."""
    warm = warm_points(spec, store)  # an unknown warm-start sweep fails before anything is stored
    sweep = store.get_sweep(sweep_id) if sweep_id else None
    if sweep is None:
        plan_json = plan.model_dump(mode="json") if plan is not None else None
        # This process drives it: held from the start, so no service on the store submits it too.
        held = lifecycle.holder(True)
        sweep = store.create_sweep(
            spec.model_dump(mode="json"), data_source, code_version(), sweep_id, plan=plan_json, driver=held
        )
    if spec.search.warm_start:
        store.update_sweep(sweep.id, warm_trials=len(warm.points))
        print(
            f"warm start: {len(warm.points)} finished trials of {', '.join(spec.search.warm_start.sweeps)} "
            f"given to the searcher as evaluated ({warm.skipped} did not fit this space)",
            flush=True,
        )

    def make_tuners():
        check_resources(spec)
        weights = load_weights(spec, settings)
        splits, full = _load_data(spec, data_source, settings, store, sweep.id)
        refit_images = len(full.y_train) + len(full.y_val)
        tuner = build_tuner(spec, splits, store, sweep.id, settings, weights, warm.points, refit_images)
        return tuner, after_search(spec, splits, full, store, sweep.id, settings, weights), splits

    return _drive(store, sweep.id, _experiment_path(settings, sweep.id), make_tuners, settings)


def after_search(
    spec: SweepSpec, splits: Splits, full: Splits, store: Store, sweep_id: str, settings: Settings, weights
) -> list:
    """What runs once the search has ended, in order: the repeats and the continuations (on
    the search's splits), then the refit (on every training image: `full`), each a function
    that makes its Tuner, or None when there is nothing left to run."""
    started = time.monotonic()  # the time budget counts from here, as the search's stopper does
    return [
        lambda: repeats_tuner(spec, splits, store, sweep_id, settings, weights),
        lambda: continues_tuner(spec, splits, store, sweep_id, settings, weights),
        lambda: refit_tuner(spec, full, store, sweep_id, settings, weights, started),
    ]


def _drive(store: Store, sweep_id: str, experiment_path: str, make_tuners, settings: Settings) -> str:
    """Run a sweep as its driver: claim it, fit the search's Tuner, then the repeats' and the
    refit's (if the spec asks for them and the search ended), and record how it ended (any
    error, Ctrl-C included, leaves the sweep `failed` with its reason, never `running`)."""
    # Tune snapshots the experiment (which trials exist, which finished) every 10 s by
    # default; a driver killed in between would, on resume, rerun a trial that had finished
    # and forget one that had started. Half a second bounds that window; the snapshot of a
    # sweep of a few dozen trials takes milliseconds.
    process_default("TUNE_GLOBAL_CHECKPOINT_S", "0.5")
    # Tune lets one trial at a time wait for its resources unless the searcher sits in its
    # own ConcurrencyLimiter; LiveSearch bounds the trials itself (to the live limit, which
    # this setting bounds), so trials start together again, as many as the cluster fits.
    process_default("TUNE_MAX_PENDING_TRIALS_PG", str(settings.max_concurrent_trials))
    try:
        check_results_writable(settings)  # before Ray starts: a full disk fails in milliseconds
        init_ray()
        tuner, phases, splits = make_tuners()
        lifecycle.claim(store, sweep_id, socket.gethostname(), os.getpid(), experiment_path)
        results = [tuner.fit()]
        for make_phase in phases:
            if not _search_ended(store, sweep_id, results[-1]):
                break
            phase = make_phase()
            if phase is not None:
                results.append(phase.fit())
        score_untested_bests(store, sweep_id, splits, results)  # the sweep is still running meanwhile
    except BaseException as e:
        with contextlib.suppress(TransitionError):
            lifecycle.fail(store, sweep_id, Reason.DRIVER_ERROR, f"{type(e).__name__}: {e}")
        raise
    status, error = _finish(store, sweep_id, results)
    print(f"sweep {sweep_id}: {status}" + (f" ({error})" if error else ""), flush=True)
    return sweep_id


def score_untested_bests(store: Store, sweep_id: str, splits: Splits, results: list) -> None:
    """Test the best weights of each trial that was stopped before it tested them (trials
    test at their scheduler's rungs and last epoch; a sweep's time or epoch budget, or a
    stop, can end one in between): the leaderboard's test column is of every model. Not
    after an interrupted run (Ctrl-C, a full disk): its resumed run does it at its end.
    A trial a time budget cut is still `running` in the store here (_finish ends it)."""
    import torch

    from cifar_sweeps.training.train import test_model_blob

    sweep = store.get_sweep(sweep_id)
    unfinished = _unfinished(results)
    if sweep.reason == Reason.DISK_LOW or (unfinished and not sweep.stop_requested):  # as driver_ended judges
        return
    for t in store.trials(sweep_id):
        ended = t.status in TRIAL_COMPLETED or t.status == TrialStatus.RUNNING
        if not ended or t.test_acc is not None or t.val_acc is None or not t.checkpoint_path:
            continue
        if (t.config or {}).get("test_on_best") is False:  # its spec tests no search trial (a refit's does)
            continue
        t0 = time.perf_counter()
        try:
            with local_model_file(t.checkpoint_path, t.id) as f:
                blob = torch.load(f, map_location="cpu", weights_only=True)
        except NotFound as e:
            print(f"trial {t.id}: not tested ({e})", flush=True)
            continue
        if blob.get("epoch") != t.best_epoch:  # the checkpoint holds other weights than the best
            continue
        try:
            acc = test_model_blob(blob, splits)
        except Exception as e:  # the sweep has ended well: a failed extra test must not undo that
            print(f"trial {t.id}: its best weights could not be tested ({type(e).__name__}: {e})", flush=True)
            continue
        store.trial_tested(t.id, acc)
        print(
            f"trial {t.id}: stopped before it tested its best weights (epoch {t.best_epoch}); "
            f"test {acc:.4f} in {time.perf_counter() - t0:.1f}s",
            flush=True,
        )


def _search_ended(store: Store, sweep_id: str, results) -> bool:
    """Whether the search ran to its end: every trial finished, no stop asked for, no disk
    running low (the repeats follow only then)."""
    sweep = store.get_sweep(sweep_id)
    unfinished = any(not t.is_finished() for t in _tune_trials(results))
    return not (unfinished or sweep.stop_requested or sweep.reason == Reason.DISK_LOW)


def repeats_tuner(spec: SweepSpec, splits: Splits, store: Store, sweep_id: str, settings: Settings, weights=None):
    """A Tuner of the repeats still missing (spec.repeat): each of the best configurations
    with new seeds, to its full epochs, first in first out; None when none is missing. Each
    repeat has a stable id, so a resumed driver replans, skips the finished ones, and runs
    an unfinished one again in its own row."""

    if spec.repeat is None:
        return None
    runs = plan_repeats(store.trials(sweep_id), spec.repeat.top, spec.repeat.seeds, spec.metric, spec.mode)
    if not runs:
        print(f"repeats: none missing ({spec.repeat.top} best configurations x {spec.repeat.seeds} seeds)", flush=True)
        return None
    print(
        f"repeats: {len(runs)} runs of the {spec.repeat.top} best configurations, to {spec.repeat.seeds} seeds each",
        flush=True,
    )
    configs = [{**r.config, REPEAT_OF: r.source_id, REPEAT_ID: r.tune_trial_id} for r in runs]
    return _fifo_tuner(spec, splits, store, sweep_id, settings, weights, f"{sweep_id}-repeats", configs)


def continues_tuner(spec: SweepSpec, splits: Splits, store: Store, sweep_id: str, settings: Settings, weights=None):
    """A Tuner of the continuations still missing (spec.continues, tuning/continued.py): each
    asked-for trial trained on from its last state, first in first out; None when none is."""

    trials = store.trials(sweep_id)
    runs = continued.plan_continues(trials, spec.continues)
    if not runs:
        return None
    configs = {t.id: t.config for t in trials}
    print(
        "continues: " + ", ".join(f"trial {r.source_id} {r.epochs} epochs more" for r in runs),
        flush=True,
    )
    runs_config = [continued.tune_config(r, configs[r.source_id], continued.state_epoch(r.state_file)) for r in runs]
    return _fifo_tuner(spec, splits, store, sweep_id, settings, weights, f"{sweep_id}-continues", runs_config)


def _fifo_tuner(
    spec: SweepSpec, splits: Splits, store: Store, sweep_id: str, settings: Settings, weights, name: str, configs: list
):
    """A Tuner of given trial configs (each with its stable REPEAT_ID), first in first out, no
    early stopping, within the sweep's concurrency, disk watch and epoch budget."""
    from ray import tune

    run = run_config(spec, store, sweep_id, settings)
    run.name = name
    run.stop = StoreStopper(
        store.url, sweep_id, **_disk_watch(settings), budget_epochs=spec.budget.epochs if spec.budget else None
    )
    return tune.Tuner(
        make_trainable(spec, splits, weights),
        param_space={"run": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(
            num_samples=1,
            max_concurrent_trials=spec.max_concurrent_trials,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
            reuse_actors=True,
        ),
        run_config=run,
    )


def refit_tuner(
    spec: SweepSpec,
    splits: Splits,
    store: Store,
    sweep_id: str,
    settings: Settings,
    weights=None,
    started: float | None = None,
):
    """A Tuner of the sweep's refit (refit.py) on `splits`' training and validation images
    (every one: no `data.train_subset`), or None when the spec asks for none, no search trial
    completed, or it is done. With `refit_share`, it trains what fits in the time budget left
    since `started` (time.monotonic). An interrupted refit's Tune state is restored, so it
    goes on from its last checkpoint (every epoch is one) with the epochs it was given."""
    from ray import tune

    if not spec.refit:
        return None
    trials = store.trials(sweep_id)
    if refit_done(trials) and not _refit_stale(spec, store, sweep_id, settings, trials):
        print("refit: done already", flush=True)
        return None
    trainable = make_trainable(spec, splits, weights, refit=True)
    path = _experiment_path(settings, f"{sweep_id}-{REFIT_ID}")
    if tune.Tuner.can_restore(path):
        print(f"refit: resumed from its checkpoint in {path}", flush=True)
        return tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    run = plan_refit(trials, spec.metric, spec.mode, parse_all(spec.constraints))
    if run is None:
        print(
            "refit: no search trial completed with a score"
            + (" and within the constraints" if spec.constraints else "")
            + ", so there is nothing to refit",
            flush=True,
        )
        return None
    n_images = len(splits.y_train) + len(splits.y_val)
    run = _stretched(spec, store, sweep_id, settings, run, n_images, started)
    print(
        f"refit: trial {run.source_id}'s configuration on {n_images} training + validation images, {run.why}",
        flush=True,
    )
    config = run_config(spec, store, sweep_id, settings)
    config.name = f"{sweep_id}-{REFIT_ID}"
    # No validation score to rank its checkpoints by: the latest is the model.
    config.checkpoint_config = tune.CheckpointConfig(num_to_keep=1)
    config.stop = StoreStopper(store.url, sweep_id, **_disk_watch(settings))
    return tune.Tuner(
        trainable,
        param_space={"run": tune.grid_search([tune_config(run)])},
        tune_config=tune.TuneConfig(num_samples=1, trial_name_creator=trial_name, trial_dirname_creator=trial_name),
        run_config=config,
    )


def _stretched(
    spec: SweepSpec, store: Store, sweep_id: str, settings: Settings, run, n_images: int, started: float | None
):
    """The refit stretched to its share of the time budget (refit.stretched), with
    `refit_share`: the share, or what is left of the budget if less (a search that ended
    early leaves the sweep to end early, not a longer refit)."""
    budget = live_limits(spec, store, sweep_id).now()[2]
    if spec.refit_share is None or budget is None or started is None:
        return run
    speedup = _refit_speedup(spec, settings, run)  # seconds of probes, out of the refit's share
    left = min(spec.refit_share * budget, budget - (time.monotonic() - started))
    return stretched(run, left, store.training_rates(sweep_id), n_images, settings.max_epochs, speedup)


def _refit_speedup(spec: SweepSpec, settings: Settings, run) -> tuple[float, str] | None:
    """How much faster the refit trains than a search trial did: it runs alone with every
    slot's CPUs (refit_resources), which one trial's measured rate does not show. Probed on
    this machine, once per shape."""
    from cifar_sweeps.analysis.throughput import shape_of, thread_speedup

    cpu, _ = refit_resources(spec)
    cfg = shape_of(spec, run.config)
    return thread_speedup(cfg, max(1, int(cpu)), settings.throughputs, settings.probe_timeout_s)


def _refit_stale(spec: SweepSpec, store: Store, sweep_id: str, settings: Settings, trials: list) -> bool:
    """Whether the refit done trained another configuration than the best one now (an
    extended search found a better one); if so, it is removed (its row, its Tune folder and
    cached exports) for a new refit to take its place."""
    from cifar_sweeps.store.cleanup import export_files

    row = refit_row(trials)
    run = plan_refit(trials, spec.metric, spec.mode, parse_all(spec.constraints))
    if run is None or row is None or not refit_is_stale(trials, row, run):
        return False
    print(
        f"refit: the best configuration is now trial {run.source_id}'s (the refit trained {row.refit_of}'s); "
        "it is refitted again",
        flush=True,
    )
    folder = _experiment_path(settings, f"{sweep_id}-{REFIT_ID}")
    if "://" not in folder:  # a URI's folder is left to its storage's own cleanup
        shutil.rmtree(folder, ignore_errors=True)
    for f in export_files(settings.cache_dir, [row.id]):
        f.unlink(missing_ok=True)
    store.delete_trial(row.id)
    return True


def _experiment_path(settings: Settings, sweep_id: str) -> str:
    root = settings.storage_root()
    return f"{root}/{sweep_id}" if isinstance(root, str) else str(root / sweep_id)


def _mark_not_restored(store: Store, sweep_id: str, tuner) -> None:
    """Say so on the trials the driver left that Tune's restored state does not hold (it
    snapshots every 0.5 s: one started just before a kill is lost to it)."""
    try:
        restored = {Path(r.path).name.removeprefix(TRIAL_DIR) for r in tuner.get_results()}
    except RuntimeError:  # Tune could not read its results back: no basis to judge a row
        return
    for tid in lifecycle.trials_not_restored(store, sweep_id, restored):
        print(f"trial {tid}: {lifecycle.NOT_RESTORED}", flush=True)


def resume_sweep(sweep_id: str, settings: Settings, store: Store, retry_errored: bool = True) -> str:
    """Continue an interrupted or stopped sweep: finished trials stay finished, unfinished
    ones continue from their last checkpoint, the searcher keeps its history."""
    from ray import tune

    from cifar_sweeps.sweepspec.schema import parse_spec

    # A killed terminal run is interrupted, not running.
    sweep = lifecycle.reconcile_local_driver(store, store.sweep(sweep_id))
    path = sweep.experiment_path or _experiment_path(settings, sweep_id)
    if not tune.Tuner.can_restore(path):
        raise SweepError(f"sweep {sweep_id} has no Tune state at {path} to resume from")
    spec = parse_spec(sweep.spec, settings)

    def make_tuners():
        weights = load_weights(spec, settings)
        splits, full = _load_data(spec, sweep.data_source, settings, store, sweep_id)
        tuner = tune.Tuner.restore(
            path,
            trainable=make_trainable(spec, splits, weights),
            resume_unfinished=True,
            resume_errored=retry_errored,
            param_space=None,
        )
        _mark_not_restored(store, sweep_id, tuner)
        return tuner, after_search(spec, splits, full, store, sweep_id, settings, weights), splits

    return _drive(store, sweep_id, path, make_tuners, settings)
