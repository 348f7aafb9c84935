"""Population-based training (`scheduler: {"type": "pbt"}`): Ray Tune's
PopulationBasedTraining, guarded like the other schedulers (schedulers.py), with each
exploit written to the store.

Every `perturbation_interval` epochs a trial's score is ranked among the population's: a
trial in the bottom `quantile_fraction` stops, takes the latest checkpoint of one in the
top (its weights, optimizer state and epoch count) and that trial's configuration with the
`mutate` params changed, each scaled by 0.8 or 1.2 or, with `resample_probability`, drawn
afresh from its param; then goes on training. The trainable applies the changed values to
the restored optimizer in place (Trainer.retune). Scaled values are kept inside the param's
range (a loguniform lr of [1e-4, 1] never leaves it), as the space says what is sensible.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

from cifar_sweeps.store.states import Exploit
from cifar_sweeps.sweepspec import spaces
from cifar_sweeps.sweepspec.config import TrainConfig
from cifar_sweeps.sweepspec.schema import SweepSpec, pbt_mutated
from cifar_sweeps.sweepspec.spaces import flatten_config
from cifar_sweeps.tuning.guard import StoreGuard


def population(spec: SweepSpec):
    """PBT's first population: Tune's own random draws over the space (Ray's PBT refuses a
    searcher, which would learn from configurations that PBT then changes), seeded, with the
    spec's points first. All of it at once: a trial not yet drawn could never join (PBT's
    trials take turns on the slots, paused at their checkpoints), so how many train at a time
    is what the cluster fits of resources_per_trial, not max_concurrent_trials."""
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(
        points_to_evaluate=[dict(p) for p in spec.search.points_to_evaluate] or None,
        max_concurrent=0,
        random_state=spec.search.seed,
    )


def population_space(spec: SweepSpec) -> dict[str, Any]:
    """The Tuner's param_space of a pbt sweep: the fixed values and a Tune domain per param."""
    from ray import tune

    drawn = {k: tune_domain(p) for k, p in spec.params.items()}
    return {**spec.fixed, **{k: tune.choice(v) if isinstance(v, list) else v for k, v in drawn.items()}}


def tune_domain(p: Any):
    """The Tune domain (or list of values) a param is drawn from (a list: PBT shifts a
    mutated choice to a neighbouring value)."""
    from ray import tune

    if isinstance(p, spaces.Choice):
        return list(p.values)
    if isinstance(p, spaces.LogUniform):
        return tune.loguniform(p.low, p.high)
    if isinstance(p, spaces.QLogUniform):
        return tune.qloguniform(p.low, p.high, p.q)
    if isinstance(p, spaces.QUniform):
        return tune.quniform(p.low, p.high, p.q)
    if isinstance(p, spaces.RandInt):
        return tune.randint(p.low, p.high)
    return tune.uniform(p.low, p.high)


class KeepInRange:
    """PBT's custom explore step: a value scaled past its param's range is put back at the
    edge (x1.2 of an lr at its upper bound would leave the space). A class, not a closure:
    the scheduler is pickled with the Tuner."""

    def __init__(self, bounds: dict[str, tuple[float, float]]):
        self.bounds = bounds

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for key, (low, high) in self.bounds.items():
            if isinstance(config.get(key), (int, float)):
                config[key] = min(max(config[key], low), high)
        return config


def _bounds(spec: SweepSpec, keys: list[str]) -> dict[str, tuple[float, float]]:
    out = {}
    for key in keys:
        p = spec.params[key]
        if not isinstance(p, spaces.Choice):
            # randint's high is exclusive
            out[key] = (p.low, p.high - 1 if isinstance(p, spaces.RandInt) else p.high)
    return out


class GuardedPBT(StoreGuard, PopulationBasedTraining):
    """Ray's PBT, guarded by the store, writing each exploit to the trial's row (which trial
    it copied, at which epochs, the values before and after; the row's config becomes the
    new one)."""

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        # A trial's last epoch is no time to copy another: it would end as that trial's
        # weights, trained no further (Ray's PBT perturbs whenever the interval has passed).
        epochs = flatten_config(trial.config).get("epochs", TrainConfig.model_fields["epochs"].default)
        if result.get("epoch", 0) >= epochs:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def _exploit(self, tune_controller, trial, trial_to_clone) -> None:
        keys = list(self._hyperparam_mutations)
        at_epoch = int(self._trial_state[trial].last_train_time)
        before = {k: trial.config.get(k) for k in keys}
        super()._exploit(tune_controller, trial, trial_to_clone)
        from cifar_sweeps.store.queries import get_store

        record = Exploit(
            at_epoch=at_epoch,
            from_epoch=int(self._trial_state[trial].last_train_time),
            source=f"{self.sweep_id}-{trial_to_clone.trial_id}",
            before=before,
            after={k: trial.config.get(k) for k in keys},
        )
        get_store(self.store_url).trial_exploited(f"{self.sweep_id}-{trial.trial_id}", record.model_dump())


def make_pbt(spec: SweepSpec, guard: dict[str, str]) -> GuardedPBT:
    keys = pbt_mutated(spec)
    s = spec.scheduler
    return GuardedPBT(
        time_attr="epoch",
        metric=spec.metric,
        mode=spec.mode,
        perturbation_interval=s.perturbation_interval,
        hyperparam_mutations={k: tune_domain(spec.params[k]) for k in keys},
        quantile_fraction=s.quantile_fraction,
        resample_probability=s.resample_probability,
        synch=s.synch,
        custom_explore_fn=KeepInRange(_bounds(spec, keys)),
        # Ray's log of every exploit goes to the Tune folder; the store holds them.
        log_config=False,
        **guard,
    )
