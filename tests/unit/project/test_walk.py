"""scripts/walk.py's arithmetic: stops, rooms and climbs back up of a walk through the layers."""

from __future__ import annotations

import importlib.util

from tests.helpers.paths import REPO

_spec = importlib.util.spec_from_file_location("walk", REPO / "scripts" / "walk.py")
walk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(walk)


def test_a_walk_that_goes_down_and_back_up_counts_each_climb():
    stops = [
        "cifar_sweeps.cli",
        "cifar_sweeps.sweepspec.schema",  # down
        "cifar_sweeps.store.queries",  # up from the spec layer: a climb
        "cifar_sweeps.settings",  # the bottom: skipped, neither down nor up
        "cifar_sweeps.tuning.driver",  # up again
        "cifar_sweeps.sweepspec.schema",
    ]
    m = walk.measure(stops)
    assert (m["stops"], m["rooms"], m["climbs"]) == (6, 5, 2)
    assert m["most"][0] == ("cifar_sweeps.sweepspec.schema", 2)


def test_old_folder_names_rank_as_their_layers_and_the_bottom_has_none():
    assert walk.rank("cifar_sweeps.spec.spec") == walk.rank("cifar_sweeps.sweepspec.schema")
    assert walk.rank("cifar_sweeps.settings") is None and walk.rank("cifar_sweeps") is None
    cli, usecase, tuning = (walk.rank(f"cifar_sweeps.{m}") for m in ("cli", "usecases.submit", "tuning.x"))
    assert cli > usecase > tuning
