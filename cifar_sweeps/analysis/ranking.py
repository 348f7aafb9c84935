"""Rankings over seeds: trials of one configuration form a group (the group key, defined
here once), and each group gets n, mean, std and a 95 % t-interval of its metric and of its
test accuracy; consecutive groups are compared with Welch's t-test, so a ranking says when
#1 is not distinguishable from #2. Torch- and Ray-free: the API serves it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cifar_sweeps.store.states import TRIAL_COMPLETED
from cifar_sweeps.sweepspec.metrics import stored_value

CONFIDENCE = 0.95
ALPHA = 0.05  # Welch's test: "distinguishable" means p < ALPHA, two-sided
# Keys of a trial's config that are not part of its configuration: the seed (what a repeat
# varies), the runner's own keys, and the repeat's pointer to its source.
REPEAT_OF, REPEAT_ID = "repeat_of", "repeat_id"  # in a repeat's Tune config: its source, its own id
REFIT_OF = "refit_of"  # in a refit's Tune config: the search trial whose configuration it trains again
# In a continuation's Tune config: the trial it trains on from, and that trial's last state file.
CONTINUE_OF, CONTINUE_FROM = "continue_of", "continue_from"
NOT_CONFIG = frozenset({"seed", "device", "threads", REPEAT_OF, REPEAT_ID, REFIT_OF, CONTINUE_OF, CONTINUE_FROM})


def searched(trials: Iterable[Any]) -> list[Any]:
    """The trials of the search and its repeats, without refits: a refit has no validation
    images, so its validation score is its source's, and counting it would count one run twice
    (in a group's mean, a front, importance, warm start)."""
    return [t for t in trials if getattr(t, "refit_of", None) is None]


def config_of(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's configuration: every parameter but the seed."""
    return {k: v for k, v in config.items() if k not in NOT_CONFIG}


def group_key(sweep_id: str, config: dict[str, Any]) -> str:
    """The group of a trial: its sweep (the split and data a score depends on) and its
    configuration, as canonical JSON."""
    return json.dumps([sweep_id, config_of(config)], sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Summary:
    """n values' mean, sample std and 95 % t-interval; std and interval are None for n = 1."""

    n: int
    mean: float | None
    std: float | None
    low: float | None
    high: float | None


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        return Summary(0, None, None, None, None)
    n, mean = len(values), math.fsum(values) / len(values)
    if n == 1:
        return Summary(1, mean, None, None, None)
    from scipy import stats

    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p-value of Welch's t-test that a and b share a mean; None when either has
    fewer than 2 values. Equal constant samples give 1.0 (nothing tells them apart)."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy import stats

    if len(set(a)) == 1 and len(set(b)) == 1:
        return 1.0 if a[0] == b[0] else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


@dataclass
class Group:
    key: str
    sweep_id: str
    config: dict[str, Any]
    trials: list[Any] = field(default_factory=list)  # store rows, completed, with a score
    metric: Summary | None = None
    test: Summary | None = None
    p_next: float | None = None  # Welch's p against the next group down
    distinct_from_next: bool | None = None  # None: untested (n < 2 on a side, or the last group)
    note: str = ""  # the comparison, in words


def group_trials(
    trials: Iterable[Any], metric: str = "val_acc", mode: str = "max", statuses: frozenset = TRIAL_COMPLETED
) -> list[Group]:
    """Trials of `statuses` (completed ones) with a score, grouped by configuration and sorted
    by mean (best first), each compared with the next one down."""
    groups: dict[str, Group] = {}
    for t in searched(trials):
        if t.status not in statuses or stored_value(t, metric) is None:
            continue
        key = group_key(t.sweep_id, t.config or {})
        groups.setdefault(key, Group(key, t.sweep_id, config_of(t.config or {}))).trials.append(t)
    out = list(groups.values())
    for g in out:
        g.trials.sort(key=lambda t: t.id)
        g.metric = summarize([stored_value(t, metric) for t in g.trials])
        g.test = summarize([t.test_acc for t in g.trials if t.test_acc is not None])
    out.sort(key=lambda g: (-g.metric.mean if mode == "max" else g.metric.mean, g.key))
    for a, b in zip(out, out[1:], strict=False):
        a.p_next = welch_p([stored_value(t, metric) for t in a.trials], [stored_value(t, metric) for t in b.trials])
        a.distinct_from_next = None if a.p_next is None else a.p_next < ALPHA
    for i, g in enumerate(out):
        g.note = _note(g, out[i + 1] if i + 1 < len(out) else None)
    return out


def _note(g: Group, below: Group | None) -> str:
    one = "one run: no interval" if g.metric.n == 1 else f"{g.metric.n} runs"
    if below is None:
        return f"{one}; the last row"
    if g.p_next is None:
        return f"{one}; not compared with the next row (Welch's test needs 2 runs on each side)"
    verdict = "better than" if g.distinct_from_next else "not distinguishable from"
    return f"{one}; {verdict} the next row (Welch's t-test, p = {g.p_next:.3g})"


def best_trial(g: Group, metric: str, mode: str) -> Any:
    pick = max if mode == "max" else min
    return pick(g.trials, key=lambda t: stored_value(t, metric))


@dataclass(frozen=True)
class RepeatRun:
    """One repeat to train: the source trial's configuration with another seed."""

    source_id: str  # the store id of the search trial it repeats
    tune_trial_id: str  # "<source's tune id>-s<seed>": the same row whenever it is retried
    config: dict[str, Any]  # the source's config, with this seed


def plan_repeats(trials: Sequence[Any], top: int, seeds: int, metric: str, mode: str) -> list[RepeatRun]:
    """The runs that bring each of the `top` best configurations of the search to `seeds`
    completed runs: the search trials rank the configurations; repeats already completed
    count, so a resumed repeat phase plans only what is missing."""
    search = [t for t in searched(trials) if t.repeat_of is None and getattr(t, "continue_of", None) is None]
    ranked = group_trials(search, metric, mode)[:top]
    done = {t.tune_trial_id for t in trials if t.repeat_of is not None and t.status in TRIAL_COMPLETED}
    runs = []
    for g in ranked:
        source = best_trial(g, metric, mode)
        # The new seeds follow from the search alone, so every replan names the same runs.
        have = {int((t.config or {}).get("seed", 0)) for t in g.trials}
        first = int(source.config.get("seed", 0)) + 1
        new = [s for s in range(first, first + seeds + len(have)) if s not in have][: seeds - len(g.trials)]
        for seed in new:
            tid = f"{source.tune_trial_id}-s{seed}"
            if tid not in done:
                runs.append(RepeatRun(source.id, tid, {**config_of(source.config), "seed": seed}))
    return runs


# ------------------------------------------------------------ Pareto fronts

# The stored metrics a front can be drawn over (and a leaderboard ordered by): sweepspec/metrics.py.


def dominates(a: Sequence[float], b: Sequence[float], modes: Sequence[str]) -> bool:
    """a is at least as good as b on every objective and better on one."""
    better = False
    for x, y, m in zip(a, b, modes, strict=True):
        if (x < y) if m == "max" else (x > y):
            return False
        better |= (x > y) if m == "max" else (x < y)
    return better


def pareto_ranks(points: Sequence[Sequence[float]], modes: Sequence[str]) -> list[int]:
    """Each point's front: 1 for the non-dominated set, 2 for the non-dominated rest once
    front 1 is removed, and so on (non-dominated sorting). Equal points share a front. Two
    objectives (the API's x and y) are sorted in O(n log n); more take the general way."""
    if len(modes) == 2:
        return _pareto_ranks_2d(points, modes)
    return pareto_ranks_by_definition(points, modes)


def pareto_ranks_by_definition(points: Sequence[Sequence[float]], modes: Sequence[str]) -> list[int]:
    """Non-dominated sorting as defined: peel off the non-dominated set, front by front (any
    number of objectives; quadratic per front)."""
    ranks = [0] * len(points)
    left = set(range(len(points)))
    front = 0
    while left:
        front += 1
        current = {i for i in left if not any(dominates(points[j], points[i], modes) for j in left if j != i)}
        for i in current:
            ranks[i] = front
        left -= current
    return ranks


def _pareto_ranks_2d(points: Sequence[Sequence[float]], modes: Sequence[str]) -> list[int]:
    """Both objectives as minima; the distinct points in (x, y) order. A point is dominated by
    one before it exactly when that one's y is at most its own, so its front is the first
    whose smallest y so far is above its y: a binary search over the fronts' smallest ys,
    which only grow from front to front."""
    import bisect

    sign = [1.0 if m == "min" else -1.0 for m in modes]
    keys = [(sign[0] * p[0], sign[1] * p[1]) for p in points]
    front_of: dict[tuple[float, float], int] = {}
    lowest: list[float] = []  # the smallest y of each front so far
    for x, y in sorted(set(keys)):
        k = bisect.bisect_right(lowest, y)
        if k == len(lowest):
            lowest.append(y)
        else:
            lowest[k] = y
        front_of[(x, y)] = k + 1
    return [front_of[k] for k in keys]
