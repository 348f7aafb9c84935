"""moved.py: every old path answers with the module that holds its code now, as the same
module object (a second copy would make a second class of the same name, and an unpickled
StoreCallback would not be the driver's), and names that never existed stay unknown."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from cifar_sweeps import moved


@pytest.mark.parametrize("target", sorted({*moved.MOVED.values(), *moved.RENAMED.values()}))
def test_every_old_path_points_at_a_module_that_exists(target):
    assert importlib.util.find_spec(f"cifar_sweeps.{target}") is not None, target


def test_renamed_maps_a_folders_modules_and_leaves_the_rest():
    assert moved.renamed("spec") == "sweepspec"
    assert moved.renamed("spec.spec") == "sweepspec.schema"
    assert moved.renamed("spec.metrics") == "sweepspec.metrics"
    assert moved.renamed("tuning.sweep") == "tuning.driver"
    assert moved.renamed("tuning.trainable") is None  # not renamed: the path finder's
    assert moved.renamed("store.store.x") is None  # a module's renamed, not a folder


# In a fresh interpreter: these imports would otherwise see modules this session loaded.
SAME_OBJECTS = """
import importlib, sys
import cifar_sweeps
pairs = [("cifar_sweeps.spec.config", "cifar_sweeps.sweepspec.config"),
         ("cifar_sweeps.spec.spec", "cifar_sweeps.sweepspec.schema"),
         ("cifar_sweeps.spec", "cifar_sweeps.sweepspec"),
         ("cifar_sweeps.store.store", "cifar_sweeps.store.queries"),
         ("cifar_sweeps.analysis.results", "cifar_sweeps.analysis.schemas"),
         ("cifar_sweeps.config", "cifar_sweeps.sweepspec.config")]
for old, new in pairs:
    assert importlib.import_module(old) is importlib.import_module(new), (old, new)
from cifar_sweeps.spec.spec import SweepSpec
from cifar_sweeps.sweepspec.schema import SweepSpec as Now
assert SweepSpec is Now
copies = [m for m in sys.modules if m.startswith("cifar_sweeps.") and sys.modules[m].__name__ != m]
assert sorted(copies) == sorted(o for o, _ in pairs), copies
try:
    importlib.import_module("cifar_sweeps.spec.nothing")
except ModuleNotFoundError as e:
    print("unknown:", e.name)
"""


def test_old_paths_import_as_the_same_module_objects():
    p = subprocess.run([sys.executable, "-c", SAME_OBJECTS], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "unknown: cifar_sweeps." in p.stdout, p.stdout
