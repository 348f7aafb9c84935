"""The searchers a spec may name, one entry each with what it can do. The spec's
`search.algorithm` values, its checks (warm start, several objectives, constraints, flat
spaces), the Tuner's param_space, tuning/searchers.py's factories and the page's choices
(served in /config.json) all read these entries: a new searcher is one entry here and one
factory there."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal


@dataclass(frozen=True)
class Searcher:
    name: str
    title: str  # as its library names it, in messages
    what: str  # one line, for the reference and the page
    warm_start: bool = False  # learns from finished trials of earlier sweeps (search.warm_start)
    multi_objective: bool = False  # ranks by several objectives (`objectives`)
    constraints: bool = False  # keeps metric constraints in its sampling (`constraints`)
    grid: bool = False  # walks the space itself: no searcher object, no more trials than points
    flat_space: bool = False  # takes plain choices only (no choices among objects)
    fixed_in_param_space: bool = False  # the fixed values reach trials through the Tuner's param_space


SEARCHERS: dict[str, Searcher] = {
    s.name: s
    for s in (
        Searcher("hyperopt", "HyperOpt", "HyperOpt's TPE after n_initial_points random trials", warm_start=True),
        Searcher("random", "random search", "HyperOpt's random draws"),
        Searcher(
            "grid",
            "grid search",
            "every combination of the choice params (the report's ladders), num_samples times",
            grid=True,
        ),
        Searcher(
            "optuna",
            "Optuna",
            "Optuna's TPE (options in `optuna`; NSGA-II for several objectives), also after "
            "n_initial_points random trials",
            warm_start=True,
            multi_objective=True,
            constraints=True,
            flat_space=True,
            fixed_in_param_space=True,
        ),
        Searcher(
            "bohb",
            "BOHB",
            "BOHB's kernel-density model per budget (its first n_initial_points configs at a budget are "
            "random), with its own HyperBand scheduler (scheduler.type hyperband)",
            flat_space=True,
            fixed_in_param_space=True,
        ),
    )
}
SearcherName = Literal[tuple(SEARCHERS)]  # type: ignore[valid-type]  # the spec's field, from the entries
DEFAULT_SEARCHER = "hyperopt"


def describe() -> str:
    """Each searcher and what it does, in one line (the spec's field description)."""
    return "; ".join(f"{s.name}: {s.what}" for s in SEARCHERS.values())


def names(what: str) -> str:
    """Those searchers in words: "hyperopt or optuna"."""
    found = able(what)
    return ", ".join(found[:-1]) + f" or {found[-1]}" if len(found) > 1 else found[0]


def able(what: str) -> list[str]:
    """The searchers that can do `what` (a capability's field name), in the registry's order."""
    return [s.name for s in SEARCHERS.values() if getattr(s, what)]


def as_json() -> list[dict]:
    """The entries as the page reads them (/config.json)."""
    return [asdict(s) for s in SEARCHERS.values()]
