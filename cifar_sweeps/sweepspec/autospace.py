"""A search space chosen by the service, for any registered model: `"params": "auto"` (or no
`params` at all, with a searching algorithm and `fixed.model`), or `{"auto": true, ...}` beside params of
one's own, which win over the chosen ones.

The rules (docs/sweeps-that-end-in-a-model.md):
- lr: log-uniform over a range around the optimizer's usual learning rate (LR_RANGES): a
  decade each side for SGD and Adam-like optimizers, where the best rate of an unseen net
  can be anywhere within it. SGD with airbench's method (whiten) takes the method's own
  scale, which is per 1,024 images of a batch.
- weight_decay: log-uniform over the optimizer's usual range (WD_RANGES); AdamW's decoupled
  decay is 100x SGD's coupled one.
- batch_size: a choice of 64, 128 and 256 (larger batches take a larger lr, which the lr
  range covers), those no larger than `data.train_subset`; not with airbench's method, whose
  lr and weight decay are set per batch of 1,024.
- label_smoothing: uniform on [0, 0.2] (0.1-0.2 is what image classifiers use).
- epochs (each trial a complete run of its own length, its schedule included): integers from
  a quarter of the longest to the longest, TrainConfig's default 10 epochs, or under
  `budget.epochs` what lets 8 trials run in full if that is less.
- the split of a time budget: the refit on (a sweep the service plans ends in a model), and
  under `time_budget_s` half of the budget kept for it (`refit_share` 0.5): the search
  compares short complete runs, and the configuration it picks trains as long as the other
  half allows (a refit as short as the search's trials gives away what training longer
  gains: docs/performance.md, "Does a sweep pay for itself?").
- lr_schedule, where `fixed` names none: linear decay to zero over the run (AUTO_SCHEDULE),
  as the presets that end in a model have. The refit has no validation images to pick an
  epoch from: it is tested at its last one, and at a constant lr that is wherever SGD's noise
  left it (the plug-in CNN, one configuration refit twice with a constant lr: 85.5 % and
  64.2 % test, 14 and 13 epochs; docs/performance.md, "Does a sweep pay for itself?").
- the scheduler, where the spec names none: fifo when the space searches the epoch count and
  the lr schedule is shaped by the run's length (onecycle, linear, cosine), ASHA otherwise.
  Measured by replaying the service's searchers on tabulated learning curves
  (docs/performance.md, "Searchers chosen by replay"): on the plug-in CNN with a cosine
  schedule and 2-10 epochs, every ASHA setting fell below random search with full-length
  trials and TPE with fifo rose above it; at a rung, a short trial's lr has decayed and a
  long one's has not, so the rungs favour the short ones. With a constant lr (the MLP),
  ASHA led.
Any parameter in `fixed` stays fixed and leaves the space; so does one given in `params`.
"""

from __future__ import annotations

import math
from typing import Any

from cifar_sweeps.sweepspec.config import LENGTH_SHAPED, TrainConfig
from cifar_sweeps.sweepspec.schedulers import paired_with

AUTO = "auto"
# (low, high) of the lr's log-uniform range, per optimizer; "sgd+method": airbench's method.
LR_RANGES: dict[str, tuple[float, float]] = {
    "sgd": (0.005, 0.5),
    "sgd+method": (0.5, 4.5),
    "adam": (1e-4, 1e-2),
    "adamw": (1e-4, 1e-2),
    "adagrad": (1e-3, 1e-1),
    "adadelta": (0.1, 10.0),
}
WD_RANGES: dict[str, tuple[float, float]] = {
    "sgd": (1e-5, 1e-2),
    "sgd+method": (4e-4, 4e-3),
    "adam": (1e-6, 1e-3),
    "adamw": (1e-4, 1e-1),
    "adagrad": (1e-6, 1e-3),
    "adadelta": (1e-6, 1e-3),
}
BATCH_SIZES = [64, 128, 256]
LABEL_SMOOTHING = (0.0, 0.2)
FULL_TRIALS_IN_BUDGET = 8  # under budget.epochs, the longest trial lets this many run in full
REFIT_SHARE = 0.5  # of time_budget_s, kept for the refit
AUTO_SCHEDULE = "linear"  # the lr schedule of an automatic space whose spec fixes none


def is_auto(params: Any) -> bool:
    if isinstance(params, dict) and AUTO in params and params[AUTO] is not True:
        raise ValueError(f"params.auto: true (the service's space for the params not given here), not {params[AUTO]!r}")
    return params == AUTO or (isinstance(params, dict) and params.get(AUTO) is True)


def _int_at(raw: dict[str, Any], section: str, key: str) -> int | None:
    value = raw.get(section, {}).get(key) if isinstance(raw.get(section), dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def wants_auto(raw: dict[str, Any]) -> bool:
    """A spec whose space the service chooses: params "auto" or {"auto": true, ...}, or no
    params with a searching algorithm and a model named (a grid's params are its points)."""
    params, search, fixed = raw.get("params"), raw.get("search", {}), raw.get("fixed")
    algorithm = search.get("algorithm", "hyperopt") if isinstance(search, dict) else None
    named = isinstance(fixed, dict) and "model" in fixed
    return is_auto(params) or (params in (None, {}) and named and algorithm not in (None, "grid"))


def _optimizer_key(fixed: dict[str, Any]) -> str:
    optimizer = fixed.get("optimizer", TrainConfig.model_fields["optimizer"].default)
    return "sgd+method" if optimizer == "sgd" and fixed.get("whiten") else str(optimizer)


def longest_epochs(budget_epochs: int | None) -> int:
    default = TrainConfig.model_fields["epochs"].default
    if budget_epochs is None:
        return default
    return max(1, min(default, budget_epochs // FULL_TRIALS_IN_BUDGET))


def auto_params(
    fixed: dict[str, Any], budget_epochs: int | None = None, train_subset: int | None = None
) -> dict[str, dict[str, Any]]:
    """The chosen space for a spec's fixed values (see the module's rules), as spec params."""
    key = _optimizer_key(fixed)
    batches = [b for b in BATCH_SIZES if train_subset is None or b <= train_subset]
    lr, wd = LR_RANGES.get(key, LR_RANGES["sgd"]), WD_RANGES.get(key, WD_RANGES["sgd"])
    top = longest_epochs(budget_epochs)
    space: dict[str, dict[str, Any]] = {
        "lr": {"type": "loguniform", "low": lr[0], "high": lr[1]},
        "weight_decay": {"type": "loguniform", "low": wd[0], "high": wd[1]},
        "batch_size": {"type": "choice", "values": batches},
        "label_smoothing": {"type": "uniform", "low": LABEL_SMOOTHING[0], "high": LABEL_SMOOTHING[1]},
    }
    if top >= 2 and "epochs" not in fixed:
        space["epochs"] = {"type": "quniform", "low": max(1, math.ceil(top / 4)), "high": top, "q": 1}
    if key == "sgd+method" or not batches:
        space.pop("batch_size")
    return {k: v for k, v in space.items() if k not in fixed}


def expand(raw: dict[str, Any]) -> dict[str, Any]:
    """The raw spec with its automatic space filled in (params given win), `auto_params`
    naming what was chosen, `refit` on unless it is set (a sweep the service plans ends in a
    model), and under a time budget the refit's share of it unless that is set."""
    given = raw.get("params")
    if isinstance(raw.get("search"), dict) and raw["search"].get("algorithm") == "grid":
        raise ValueError('params: "auto" chooses ranges to search; a grid search takes its points as choice params')
    own = {k: v for k, v in given.items() if k != AUTO} if isinstance(given, dict) else {}
    fixed = raw.get("fixed") if isinstance(raw.get("fixed"), dict) else {}
    budget = _int_at(raw, "budget", "epochs")
    chosen = {k: v for k, v in auto_params(fixed, budget, _int_at(raw, "data", "train_subset")).items() if k not in own}
    fixed = {"lr_schedule": AUTO_SCHEDULE, **fixed}  # its last epoch is the refit's model: settled
    out = {**raw, "fixed": fixed, "params": {**chosen, **own}, "auto_params": sorted(chosen)}
    out.setdefault("refit", True)
    if out["refit"] and raw.get("time_budget_s") is not None:
        out.setdefault("refit_share", REFIT_SHARE)
    if "epochs" in out["params"] and fixed.get("lr_schedule") in LENGTH_SHAPED and not _names_scheduler(raw):
        out["scheduler"] = {"type": "fifo"}  # rungs would judge unlike runs
    return out


def _names_scheduler(raw: dict[str, Any]) -> bool:
    """Whether the spec chose its scheduler: any scheduler setting, or a searcher that brings
    its own (BOHB's HyperBand)."""
    search = raw.get("search") if isinstance(raw.get("search"), dict) else {}
    return "scheduler" in raw or paired_with(search.get("algorithm") or "") is not None
