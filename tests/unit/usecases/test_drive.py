"""The drive use case: what a sweep's Ray job runs, started as a module of the use-case
layer (not the CLI), with nothing but the sweep's id on its command line."""

from __future__ import annotations

import sys

from cifar_sweeps.cluster.jobs import DRIVER_MODULE, entrypoint


def test_the_ray_jobs_entry_point_is_the_drive_use_case_with_the_sweeps_id():
    local = entrypoint("run", "sw-1", shared=True)
    assert local.split()[1:] == ["-m", DRIVER_MODULE, "run", "sw-1"]
    assert local.split()[0] == sys.executable  # this interpreter: its Python has the package
    assert entrypoint("resume", "sw-1", shared=False) == f"python -m {DRIVER_MODULE} resume sw-1"
    assert entrypoint("run", "a b; rm -rf /", shared=False).endswith("run 'a b; rm -rf /'")  # one argument
