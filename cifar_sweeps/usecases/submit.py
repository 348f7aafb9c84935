"""Submit a sweep to the cluster, and plan one: what POST /sweeps and POST /sweeps/plan do,
their routes only parsing the body and presenting the answer.

A submit checks the spec (its fields and limits, plug-in models' arguments, the webhooks it
names), then what the sweep will need (room in the queue, staged weights, the warm-start
sweeps, a writable results folder, memory for its trials, from a plan of the store's and
earlier probes' figures: a submit never waits on a probe), and only then stores and queues
it as a Ray job (cluster/jobs.py). Each refusal is an error of errors.py naming the problem,
with nothing stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cifar_sweeps.analysis.plan import check_fits, plan_for, with_replay
from cifar_sweeps.analysis.schemas import PlanOut
from cifar_sweeps.analysis.warm import warm_points
from cifar_sweeps.cluster.connection import is_local_url
from cifar_sweeps.cluster.resources import named_cluster_url, resources_at
from cifar_sweeps.errors import QueueFull, RayUnavailable, SpecError, StorageError
from cifar_sweeps.settings import Settings
from cifar_sweeps.store.artifacts import check_results_writable
from cifar_sweeps.store.states import SweepStatus
from cifar_sweeps.sweepspec.modelcheck import check_http_model_args
from cifar_sweeps.sweepspec.schema import SweepSpec, needs_pretrained, parse_spec
from cifar_sweeps.version import code_version


@dataclass(frozen=True)
class Submitted:
    sweep: Any  # the store's row (store.Sweep), queued
    plan: PlanOut  # what it will cost, with its warnings


def check_spec(raw: dict[str, Any], settings: Settings) -> SweepSpec:
    """The spec of a request body, checked as far as it can be without the store: SpecError
    (422) naming the field. CPU-bound (it expands the space): the routes run it in their lane."""
    spec = parse_spec(raw, settings)  # the fields and the limits
    check_http_model_args(spec)
    check_notify(spec, settings)
    return spec


def check_notify(spec: SweepSpec, settings: Settings) -> None:
    """A spec's `notify` names only the operator's webhooks (a 422 otherwise)."""
    for i, name in enumerate(spec.notify or []):
        if name not in settings.webhooks:
            known = ", ".join(sorted(settings.webhooks)) or "none is configured (CIFAR_SWEEPS_WEBHOOKS)"
            raise SpecError(f"notify[{i}]: no webhook named {name[:40]!r}; the operator's: {known}")


def submit_sweep(spec: SweepSpec, settings: Settings, store, jobs, run_probe: bool = False) -> Submitted:
    """Store `spec` as a queued sweep and submit it through `jobs` (cluster/jobs.py), after
    the checks that need the store and the cluster; QueueFull (429), SpecError (422),
    StorageError (507) or RayUnavailable (503) with nothing stored. `run_probe`: a trial
    shape never measured is probed for the plan (seconds; `serve --submit` on a fresh store),
    which a request never waits for."""
    queued = store.count_sweeps([SweepStatus.QUEUED])
    if queued >= settings.max_queued_sweeps:
        raise QueueFull(
            f"{queued} sweeps are already queued (CIFAR_SWEEPS_MAX_QUEUED_SWEEPS); submit again once some have started"
        )
    check_local_weights(spec, settings, jobs.url)
    warm_points(spec, store)  # an unknown or unrelated warm-start sweep: 422 now
    writable_results(settings)
    plan = plan_on(spec, settings, store, jobs.url, run_probe=run_probe)
    check_fits(plan)  # 422 with the figures: trials that can't fit the node's memory
    try:
        sweep = jobs.create(spec.model_dump(mode="json"), code_version(), plan=plan.model_dump(mode="json"))
    except RayUnavailable as e:
        raise RayUnavailable(f"{e}; nothing was stored, submit again once Ray is up") from None
    return Submitted(sweep, plan)


def plan_spec(
    spec: SweepSpec,
    settings: Settings,
    store,
    cluster_url: str | None,
    replay: str | None = None,
    replay_seeds: int = 20,
    allow_path: bool = False,
) -> PlanOut:
    """What `spec` will cost on the cluster at `cluster_url`, a trial shape never measured
    probed (a few batches, in a process of its own); with `replay`, its search replayed on
    that tabulated task (`allow_path`: or a table file, for the CLI on its own machine).
    Nothing is stored or submitted."""
    out = plan_on(spec, settings, store, cluster_url)
    return with_replay(out, spec, settings, replay, replay_seeds, allow_path) if replay else out


def plan_here(spec: SweepSpec, settings: Settings, store) -> PlanOut:
    """The plan of a run in this process (`cifar-sweeps run`): counted on the cluster
    RAY_ADDRESS names, or on this machine, whose head the run starts."""
    return plan_on(spec, settings, store, named_cluster_url(settings))


def plan_on(spec: SweepSpec, settings: Settings, store, cluster_url: str | None, run_probe: bool = True) -> PlanOut:
    """The plan of `spec` counted on the cluster at `cluster_url` (None: this machine, whose
    head a run starts), a cluster that does not answer counted as this machine, and said."""
    resources, notes = resources_at(cluster_url)
    return plan_for(spec, settings, store, resources, run_probe=run_probe, notes=tuple(notes))


def check_local_weights(spec: SweepSpec, settings: Settings, cluster_url: str) -> None:
    """On a cluster on this machine (the service's own local head) the driver reads the same
    weights folder as this process: weights it would not find are a 422 now, not a failed
    sweep later. A remote cluster's driver checks its own folder before any trial starts."""
    from cifar_sweeps.training.weights import check_staged

    if is_local_url(cluster_url):
        check_staged(needs_pretrained(spec), settings.weights_dir)


def writable_results(settings: Settings) -> None:
    try:
        check_results_writable(settings)
    except StorageError as e:
        # 507 Insufficient Storage: the server can't store what the sweep will write.
        raise StorageError(f"{e}; nothing was stored") from None
