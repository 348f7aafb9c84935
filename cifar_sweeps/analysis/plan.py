"""The cost of a spec before it runs: trials, trial-epochs (the scheduler's rung arithmetic),
images, how many trials fit at once, wall time (best and worst case), peak memory per trial,
and where a time budget or an epoch budget cuts the sweep. No side effects: nothing is
stored and nothing is submitted. Every figure says where it came from.

Throughput, per (model, batch size, width, depth, threads, device), comes from epochs the
store has measured; else from a probe (throughput.py), kept in <results>/cache/throughput.json
for next time; else the plan says it is unknown. Torch- and Ray-free: the API plans too.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from cifar_sweeps.analysis.schemas import EpochRange, PlanOut, PlanResources
from cifar_sweeps.analysis.throughput import PROBE_TIMEOUT_S, Throughput, from_probe, key_of, trial_config
from cifar_sweeps.sweepspec.config import TrainConfig
from cifar_sweeps.sweepspec.schedulers import SCHEDULERS
from cifar_sweeps.sweepspec.schema import SweepSpec, old_name_warnings
from cifar_sweeps.sweepspec.spaces import candidates

STARTUP_S = 20.0  # Ray's start, the driver, the first trial's process, decoded data at hand (s, measured)
TRIAL_START_S = 1.3  # each trial's process, model and checkpoints beyond its epochs (s, measured)
DECODE_IMAGES_PER_S = 4000.0  # images decoded and cached when no cache holds the data at its size
CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000
TRIAL_BASE_MB = 900.0  # stated default peak of a trial process when nothing was probed (MiB)
STORE_EPOCHS = 50  # the most recent matching epochs the store's estimate reads
REPLAY_TIMEOUT_S = 120  # 20 seeds of TPE take seconds; 200 up to a minute or two


# ------------------------------------------------------------ arithmetic (pure)


def data_sizes(spec: SweepSpec, source: str) -> tuple[int, int]:
    """(training images, validation images) a trial of the spec sees per epoch."""
    pool = training_pool(source)
    n_val = round(pool * spec.data.val_fraction)
    n_train = pool - n_val
    if spec.data.train_subset:
        n_train = min(n_train, spec.data.train_subset)
    return n_train, n_val


def data_mb(spec: SweepSpec, source: str) -> float:
    """The data set's bytes at the spec's image size (MiB): every training and test image as
    uint8, size x size x 3 (CIFAR-10's 60,000 for any source but the synthetic)."""
    pool = training_pool(source)
    test = pool // 5 if source.startswith("synthetic:") else CIFAR_TEST
    return (pool + test) * spec.data.image_size**2 * 3 / 2**20


def check_data_size(spec: SweepSpec, source: str, max_mb: float) -> None:
    """SpecError (422) naming data.image_size with the figures when the data set at its size
    is past what a sweep may hold: before any probe, check or decode (in milliseconds)."""
    from cifar_sweeps.errors import SpecError

    mb = data_mb(spec, source)
    if mb > max_mb:
        size = spec.data.image_size
        raise SpecError(
            f"data.image_size: {size}x{size} images take {mb:,.0f} MiB for this data set "
            f"({training_pool(source) + (CIFAR_TEST if not source.startswith('synthetic:') else 0):,} images x "
            f"{size}x{size}x3 bytes), over the {max_mb:,.0f} MiB a sweep may hold (CIFAR_SWEEPS_MAX_DATA_MB); "
            "ask a smaller size"
        )


def class_count(source: str) -> int:
    """The classes a model is built with: an image folder's class folders under train/ (a
    listing, no image read); 10 for CIFAR-10 and the synthetic set, and for an archive
    (counting its classes would decompress it)."""
    train = Path(source) / "train"
    if train.is_dir() and not train.is_symlink():
        n = sum(1 for d in train.iterdir() if d.is_dir() and not d.is_symlink())
        return n if n >= 2 else 10
    return 10


def training_pool(source: str) -> int:
    """The source's training images (CIFAR-10's 50,000 for any source but the synthetic):
    what a refit trains on, training and validation images together."""
    return int(source.split(":", 1)[1]) if source.startswith("synthetic:") else CIFAR_TRAIN


def refit_seconds(
    spec: SweepSpec, per_epoch: float, n_train: int, n_val: int, pool: int, train_s_per_image: float | None = None
) -> float:
    """The refit's wall time: its epochs (at most the max), each training on the whole pool:
    at the measured training rate when there is one, else scaled from a search epoch
    (`per_epoch` covers n_train + n_val images, training and validating); with `refit_share`,
    at least that share of the time budget, which it fills."""
    if not spec.refit:
        return 0.0
    per_refit_epoch = pool * train_s_per_image if train_s_per_image else per_epoch * pool / (n_train + n_val)
    own = spec.max_epochs() * per_refit_epoch + TRIAL_START_S
    if spec.refit_share is not None and spec.time_budget_s is not None:
        return max(own, spec.refit_share * spec.time_budget_s)
    return own


def startup_seconds(spec: SweepSpec, source: str, cache_dir: Path | None) -> tuple[float, str]:
    """What the user waits for before the first epoch: Ray and the driver (STARTUP_S), and,
    when no cache holds the data set at the spec's size, its decoding."""
    if source.startswith(("synthetic:", "torchvision")) or cache_dir is None:
        return STARTUP_S, f"{STARTUP_S:.0f} s to start (Ray, the driver, the first trial)"
    from cifar_sweeps.training.data import _cache_file  # torch-free: the cache file's name

    try:
        cached = _cache_file(source, cache_dir, spec.data.image_size).exists()
    except OSError:
        cached = False
    if cached:
        return STARTUP_S, f"{STARTUP_S:.0f} s to start (Ray, the driver, the first trial; the data decoded already)"
    decode = (training_pool(source) + CIFAR_TEST) / DECODE_IMAGES_PER_S
    return STARTUP_S + decode, (
        f"{STARTUP_S + decode:.0f} s to start (Ray, the driver, the first trial, and about {decode:.0f} s "
        "decoding the images: no cache holds them at this size yet)"
    )


def epoch_values(spec: SweepSpec) -> list[float]:
    """The epochs a trial can be given: the fixed value, or the searched param's values."""
    given = spec.fixed.get("epochs", spec.params.get("epochs"))
    if given is None:
        return [float(TrainConfig().epochs)]
    return [float(v) for v in candidates(given)] if not isinstance(given, (int, float)) else [float(given)]


MAX_RUNGS = 200  # rungs counted at most: the spec's bounds make at most about 100


def rungs(spec: SweepSpec, max_t: int) -> list[int]:
    """ASHA's rungs: grace, grace*rf, ... below max_t, then max_t."""
    out, r = [], float(spec.scheduler.grace_period)
    while r < max_t and len(out) < MAX_RUNGS:
        out.append(int(r))
        r *= spec.scheduler.reduction_factor
    return [*out, max_t]


# The schedulers that stop no trial, and what the plan assumes of them (schedulers.py).
WHOLE_RUNS = {s.name: s.whole_run for s in SCHEDULERS.values() if s.whole_run}


def per_trial_epochs(spec: SweepSpec) -> EpochRange:
    """Epochs one trial trains: fifo trains its budget; asha stops it at a rung. Expected
    under ASHA assumes 1/reduction_factor of the trials pass each rung (its design ratio)."""
    values = epoch_values(spec)
    lo, hi = min(values), max(values)
    mid = statistics.fmean(values)
    if spec.scheduler.type in WHOLE_RUNS:
        return EpochRange(min=lo, expected=mid, max=hi, assumption=WHOLE_RUNS[spec.scheduler.type])
    steps = rungs(spec, int(hi))
    rf = spec.scheduler.reduction_factor
    expected = steps[0] + sum((b - a) / rf ** (k + 1) for k, (a, b) in enumerate(zip(steps, steps[1:], strict=False)))
    kind = "asha" if spec.scheduler.type == "asha" else "hyperband (counted as ASHA's rungs)"
    return EpochRange(
        min=float(steps[0]),
        expected=expected,
        max=hi,
        assumption=f"{kind}: rungs at {steps} epochs; 1 in {rf:g} trials passes each rung",
    )


def trial_epochs(spec: SweepSpec) -> tuple[EpochRange, float, list[str]]:
    """The sweep's trial-epochs (the search's, plus the repeats' and the refit's), the
    repeats' and the refit's share, and where an epoch budget cuts it."""
    n = spec.total_trials()
    per = per_trial_epochs(spec)
    lo = (
        per.max + (n - 1) * per.min if spec.scheduler.type not in WHOLE_RUNS else n * per.min
    )  # ASHA: one trial goes the distance
    mid, hi = n * per.expected, n * per.max
    cuts = []
    cap = spec.search_budget()
    if cap is not None:
        if hi > cap:
            cuts.append(f"budget.epochs stops the search at {cap} trial-epochs (of up to {hi:g})")
        lo, mid, hi = min(lo, cap), min(mid, cap), min(hi, cap + spec.max_concurrent_trials - 1)
    after = float(spec.repeat_epochs() + spec.refit_epochs())
    return (
        EpochRange(min=lo + after, expected=mid + after, max=hi + after, assumption=per.assumption),
        after,
        cuts,
    )


def slots(spec: SweepSpec, cpus: float, gpus: float) -> int:
    r = spec.resources_per_trial
    fit = math.floor(cpus / r.cpu + 1e-9)
    if r.gpu > 0:
        fit = min(fit, math.floor(gpus / r.gpu + 1e-9))
    return max(0, min(spec.max_concurrent_trials, fit, spec.total_trials() + (spec.repeat.top if spec.repeat else 0)))


def wall_seconds(
    epochs: EpochRange, per_epoch: float, n_slots: int, spec: SweepSpec, startup: float = STARTUP_S
) -> tuple[float, float]:
    """Best case: the trial-epochs spread over every slot. Worst case: the longest trials in
    waves of `n_slots`, at the max epochs. Each wave of trials starts its processes."""
    n = spec.total_trials()
    starts = math.ceil(n / n_slots) * TRIAL_START_S
    best = startup + starts + epochs.min * per_epoch / n_slots
    waves = math.ceil(n / n_slots) * per_trial_epochs(spec).max
    if spec.repeat:
        waves += math.ceil(spec.repeat.top * (spec.repeat.seeds - 1) / n_slots) * spec.max_epochs()
    worst = startup + starts + max(waves, epochs.max / n_slots) * per_epoch
    return best, worst


# ------------------------------------------------------------ throughput


def from_store(store, cfg: dict[str, Any], images: int) -> Throughput | None:
    """Seconds per epoch from the store's epochs of the same model, batch size, width,
    depth, threads and device, scaled to this spec's images per epoch."""
    rows = store.measured_epochs(cfg.get("model", TrainConfig().model), limit=STORE_EPOCHS * 20)
    want = key_of(cfg)
    per_image = []
    for seconds, config, spec, source in rows:
        r = (spec or {}).get("resources_per_trial") or {}
        measured = {**config, "threads": max(1, int(r.get("cpu", 1))), "device": "cuda" if r.get("gpu") else "cpu"}
        if key_of(measured) != want:
            continue
        try:
            n_train, n_val = data_sizes(SweepSpec.model_validate(spec), source)
        except Exception:  # a spec of an older version: skip it
            continue
        per_image.append(seconds / (n_train + n_val))
        if len(per_image) >= STORE_EPOCHS:
            break
    if not per_image:
        return None
    return Throughput(statistics.median(per_image) * images, None, f"store: median of {len(per_image)} measured epochs")


# ------------------------------------------------------------ the plan


def make_plan(
    spec: SweepSpec,
    data_source: str,
    store,
    cache: Path,
    resources: PlanResources,
    run_probe: bool = True,
    warn_hours: float = 8.0,
    throughput: Throughput | None = None,
    model_params: dict[str, int] | None = None,
    probe_timeout_s: float = PROBE_TIMEOUT_S,
) -> PlanOut:
    """The plan; `throughput` given, neither the store nor a probe is asked."""
    n_train, n_val = data_sizes(spec, data_source)
    epochs, after, cuts = trial_epochs(spec)
    cfg = trial_config(spec)
    tp = (
        throughput
        or from_store(store, cfg, n_train + n_val)
        or from_probe(cfg, n_train, n_val, cache, run_probe, probe_timeout_s)
        or Throughput(None, None, "unknown: no measured epoch of this trial shape and no probe")
    )
    model_params = model_params or {}
    n_slots = slots(spec, resources.cpus, resources.gpus)
    plan = PlanOut(
        trials=spec.total_trials(),
        repeat_trial_epochs=float(spec.repeat_epochs()),
        refit_trial_epochs=float(spec.refit_epochs()),
        trial_epochs=epochs,
        images=EpochRange(
            min=epochs.min * (n_train + n_val),
            expected=epochs.expected * (n_train + n_val),
            max=epochs.max * (n_train + n_val),
            assumption=f"{n_train} training + {n_val} validation images per epoch",
        ),
        resources=resources,
        concurrent_trials=n_slots,
        seconds_per_epoch=tp.seconds_per_epoch,
        throughput_source=tp.source,
        cuts=cuts,
        warnings=[],
        model_params=model_params,
        auto_space={k: spec.params[k].model_dump(mode="json") for k in spec.auto_params if k in spec.params},
    )
    plan.warnings += old_name_warnings(spec)
    if tp.source.startswith("unknown: the probe"):
        plan.warnings.append(f"wall time {tp.source.removeprefix('unknown: ')}: the sweep can still run")
    startup, plan.startup = startup_seconds(spec, data_source, cache.parent if cache else None)
    if tp.seconds_per_epoch is not None:
        plan.refit_s = refit_seconds(
            spec, tp.seconds_per_epoch, n_train, n_val, training_pool(data_source), tp.train_s_per_image
        )
    _timing(plan, spec, tp, warn_hours, startup)
    _memory(plan, tp, resources, estimated_peak_mb(spec, max(model_params.values(), default=None)))
    return plan


def _timing(plan: PlanOut, spec: SweepSpec, tp: Throughput, warn_hours: float, startup: float = STARTUP_S) -> None:
    if plan.concurrent_trials == 0:
        plan.warnings.append(
            f"no trial fits the cluster: each asks {spec.resources_per_trial.cpu:g} CPUs and "
            f"{spec.resources_per_trial.gpu:g} GPUs, it has {plan.resources.cpus:g} and {plan.resources.gpus:g}"
        )
        return
    if tp.seconds_per_epoch is None:
        return
    # The search's trial-epochs; the refit runs alone after it, on every training image.
    search = plan.trial_epochs.model_copy(
        update={k: getattr(plan.trial_epochs, k) - plan.refit_trial_epochs for k in ("min", "expected", "max")}
    )
    refit = plan.refit_s or 0.0
    best, worst = wall_seconds(search, tp.seconds_per_epoch, plan.concurrent_trials, spec, startup)
    starts = math.ceil(spec.total_trials() / plan.concurrent_trials) * TRIAL_START_S
    expected = startup + starts + search.expected * tp.seconds_per_epoch / plan.concurrent_trials
    plan.wall_s_best, plan.wall_s_expected, plan.wall_s_worst = best + refit, expected + refit, worst + refit
    limit = spec.time_budget_s
    if limit is not None and spec.refit_share is not None:
        plan.cuts.append(
            f"refit_share keeps the last {spec.refit_share:.0%} of time_budget_s ({spec.refit_share * limit:.0f} s) "
            "for the refit, which trains as many epochs as fit in it"
        )
    if limit is not None and plan.wall_s_worst > startup + limit:
        plan.cuts.append(
            f"time_budget_s stops the sweep at {limit:g} s"
            + (" (the search stops early to leave the refit its time)" if spec.refit else "")
            + f"; without it the worst case is {plan.wall_s_worst:.0f} s"
        )
        plan.warnings.append(f"the worst case ({_hours(plan.wall_s_worst)}) exceeds time_budget_s")
        # The budget bounds the run: the search's trials stop at it, or earlier by the refit's share.
        plan.wall_s_best, plan.wall_s_expected, plan.wall_s_worst = (
            min(x, startup + limit) for x in (plan.wall_s_best, plan.wall_s_expected, plan.wall_s_worst)
        )
    if plan.wall_s_worst > warn_hours * 3600:
        plan.warnings.append(
            f"the worst case is {_hours(plan.wall_s_worst)} on this cluster, over {warn_hours:g} h "
            "(CIFAR_SWEEPS_PLAN_WARN_HOURS)"
        )


# Where nothing was probed, a trial's peak is estimated: a trial process with torch loaded,
# four fp32 copies of the parameters (weights, gradients, momentum, the best weights), and
# the activations kept for the backward pass, about ACTIVATIONS_PER_INPUT floats per input
# float (the zoo's conv nets keep 100-300 channels' worth at 32x32; stated, not measured).
PROCESS_MB = 600.0
ACTIVATIONS_PER_INPUT = 200


def estimated_peak_mb(spec: SweepSpec, params: int | None) -> float:
    """A trial's peak memory (MiB) without a probe, from its parameters and its largest batch."""
    size = spec.data.image_size
    batches = [v for v in candidates(spec.fixed.get("batch_size", spec.params.get("batch_size"))) or []]
    batch = max([int(b) for b in batches if isinstance(b, (int, float))] or [TrainConfig().batch_size])
    weights = 16 * (params or 0) / 2**20
    activations = batch * 3 * size * size * ACTIVATIONS_PER_INPUT * 4 / 2**20
    return PROCESS_MB + weights + activations


def check_fits(plan: PlanOut) -> None:
    """SpecError (422) with the figures when the trials that run at once can't fit the
    cluster's memory: at submit, before anything is stored (the plan itself only warns)."""
    from cifar_sweeps.errors import SpecError

    if plan.memory_fits is False:
        raise SpecError(
            f"resources_per_trial / max_concurrent_trials: {plan.concurrent_trials} trials at once at about "
            f"{plan.peak_mb_per_trial:.0f} MiB each ({plan.memory_source}) need "
            f"{plan.concurrent_trials * plan.peak_mb_per_trial:.0f} MiB, over the node's "
            f"{plan.resources.memory_mb:.0f} MiB ({plan.resources.source}); run fewer at once or smaller trials"
        )


def _memory(plan: PlanOut, tp: Throughput, resources: PlanResources, estimate_mb: float = TRIAL_BASE_MB) -> None:
    plan.peak_mb_per_trial = tp.peak_mb or estimate_mb
    plan.memory_source = (
        "the probe's peak"
        if tp.peak_mb
        else f"an estimate from the model's parameters and the batch ({estimate_mb:.0f} MiB; nothing probed)"
    )
    need = plan.peak_mb_per_trial * max(plan.concurrent_trials, 1)
    plan.memory_fits = need <= resources.memory_mb
    if not plan.memory_fits:
        plan.warnings.append(
            f"{plan.concurrent_trials} trials at about {plan.peak_mb_per_trial:.0f} MiB each exceed the node's "
            f"{resources.memory_mb:.0f} MiB"
        )


def _range(name: str, p: dict[str, Any]) -> str:
    """One param as a terminal shows it: `lr loguniform 0.005..0.5`, `batch_size 64|128|256`."""
    if p.get("type") == "choice":
        return f"{name} " + "|".join(str(v) for v in p.get("values", []))
    return f"{name} {p.get('type')} {p.get('low'):g}..{p.get('high'):g}"


def _hours(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 5400 else f"{s / 60:.0f} min"


def plan_for(
    spec: SweepSpec,
    settings,
    store,
    resources: PlanResources,
    run_probe: bool = True,
    data_source: str | None = None,
    notes: tuple[str, ...] = (),
) -> PlanOut:
    """The plan of `spec` on this service's data and store, counted on `resources` (the
    cluster's CPUs, GPUs and memory, cluster/resources.py: the use case that plans reads
    them), with `notes` about them among its warnings. Its plug-in models are built first
    (modelcheck.py: SpecError for one that can't be), their parameter counts in the plan."""
    from cifar_sweeps.sweepspec.modelcheck import check_models

    check_data_size(spec, data_source or settings.data, settings.max_data_mb)
    params = check_models(spec, class_count(data_source or settings.data))
    plan = make_plan(
        spec,
        data_source or settings.data,
        store,
        settings.throughputs,
        resources,
        run_probe=run_probe,
        warn_hours=settings.plan_warn_hours,
        model_params=params,
        probe_timeout_s=settings.probe_timeout_s,
    )
    plan.warnings.extend(notes)
    return plan


def with_replay(
    plan: PlanOut, spec: SweepSpec, settings, table: str, seeds: int = 20, allow_path: bool = False
) -> PlanOut:
    """The plan with the spec's search replayed on the tabulated task `table`: in a process
    of its own (tuning/replay.py: Ray Tune's searchers stay out of the API process), one at
    a time with the service's other children, bounded in time."""
    from cifar_sweeps.analysis.replay import MAX_REPLAY_SEEDS, ReplayOut, find_table, tables_dir
    from cifar_sweeps.errors import InputError
    from cifar_sweeps.subprocs import run_torch

    if not 1 <= seeds <= MAX_REPLAY_SEEDS:
        raise InputError(f"replay: seeds must be 1..{MAX_REPLAY_SEEDS}, got {seeds}")
    path = find_table(table, tables_dir(settings.replay_tables), allow_path)
    request = {"spec": spec.model_dump(mode="json"), "table": str(path.resolve()), "seeds": seeds}
    p = run_torch("cifar_sweeps.tuning.replay", request, REPLAY_TIMEOUT_S, "the replay")
    try:
        plan.replay = ReplayOut.model_validate_json(p.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise InputError(f"replay: the replay on {path.stem} failed ({tail})") from None
    return plan


def actual(plan: dict, sweep, epochs_done: int):
    """A finished sweep's plan against what it took (None while it runs or without a plan)."""
    from cifar_sweeps.analysis.schemas import PlanActual

    if not plan or sweep.finished_at is None:
        return None
    return PlanActual(
        estimated_s=plan.get("wall_s_expected"),
        actual_s=(sweep.finished_at - sweep.created_at).total_seconds(),
        trial_epochs_planned=EpochRange(**plan["trial_epochs"]),
        trial_epochs_actual=epochs_done,
    )


def describe(plan: PlanOut) -> str:
    """The plan in a few lines, for a terminal."""
    e, i = plan.trial_epochs, plan.images
    lines = [
        f"plan: {plan.trials} trials; trial-epochs {e.min:g} min, {e.expected:.0f} expected, {e.max:g} max "
        f"({e.assumption})"
        + (f"; repeats up to {plan.repeat_trial_epochs:g} of them" if plan.repeat_trial_epochs else "")
        + (
            f"; the refit up to {plan.refit_trial_epochs:g} of them (on the training and validation images)"
            if plan.refit_trial_epochs
            else ""
        ),
        f"  images processed: {i.expected:,.0f} expected ({i.assumption})",
        f"  {plan.concurrent_trials} trials at once on {plan.resources.cpus:g} CPUs, {plan.resources.gpus:g} GPUs "
        f"({plan.resources.source})",
    ]
    if plan.seconds_per_epoch is not None and plan.wall_s_best is not None:
        lines.append(
            f"  wall time: {_hours(plan.wall_s_best)} best, {_hours(plan.wall_s_expected)} expected, "
            f"{_hours(plan.wall_s_worst)} worst; {plan.seconds_per_epoch:.1f} s per epoch from {plan.throughput_source}"
        )
        if plan.startup:
            lines.append(f"  of which {plan.startup}, and {TRIAL_START_S:g} s to start each wave of trials")
    else:
        lines.append(f"  wall time: unknown ({plan.throughput_source})")
    lines.append(
        f"  peak memory per trial: about {plan.peak_mb_per_trial:.0f} MiB ({plan.memory_source}); "
        f"{'fits' if plan.memory_fits else 'does NOT fit'} the node"
    )
    lines += [f"  model {m}: {n:,} parameters (built on the meta device)" for m, n in plan.model_params.items()]
    if plan.auto_space:
        lines.append("  space chosen by the service: " + "; ".join(_range(k, p) for k, p in plan.auto_space.items()))
    lines += [f"  cut: {c}" for c in plan.cuts] + [f"  warning: {w}" for w in plan.warnings]
    if plan.replay is not None:
        from cifar_sweeps.analysis.replay import describe_replay

        lines.append(describe_replay(plan.replay))
    return "\n".join(lines)
