"""The modules' old paths: the flat layout's (before the package was split into layers) and
the layer folders' before their renames (spec/ is sweepspec/, tuning/sweep.py is
tuning/driver.py...). Tune pickles a sweep's scheduler, callbacks and stopper by module
path, so an experiment interrupted under an earlier layout names `cifar_sweeps.schedulers`
or `cifar_sweeps.tuning.sweep`; these finders answer those names with the modules that now
hold the code, on first import only (nothing is loaded ahead).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

# old module (under cifar_sweeps.) -> its path now
MOVED: dict[str, str] = {
    **{m: f"sweepspec.{m}" for m in ("config", "spaces", "presets", "registry", "modelcheck")},
    **{m: f"store.{m}" for m in ("states", "lifecycle", "migrations")},
    "storage": "store.artifacts",
    **{m: f"training.{m}" for m in ("data", "loader", "models", "weights", "train", "probe", "predict")},
    **{m: f"training.{m}" for m in ("precision", "export")},
    "method": "training.airbench_method",
    "analysis": "analysis.importance",
    **{m: f"analysis.{m}" for m in ("ranking", "filters", "plan", "warm")},
    "jobs": "cluster.jobs",
    "sweep": "tuning.driver",
    **{m: f"tuning.{m}" for m in ("trainable", "searchers", "schedulers", "tracking")},
    **{m: f"service.{m}" for m in ("api", "cache", "schemas", "routes")},
}
# An old name that is a package's now (`cifar_sweeps.store` was store.py, and likewise
# cluster.py and analysis.py) is found as the package (this finder comes last):
# `cifar_sweeps.store.Store` is not answered. No class of those modules is pickled into an
# experiment (the scheduler, callbacks and stopper hold the store's URL, not a Store).

# The layer folders' names before they were renamed (so that no folder reads as tests and no
# module is named like its folder): a sweep interrupted under them pickled
# `cifar_sweeps.tuning.sweep.StoreCallback` and the like. `cifar_sweeps.spec` (the folder,
# and the flat layout's spec.py before it) is the folder now; its modules are the folder's.
RENAMED: dict[str, str] = {
    "spec": "sweepspec",
    "spec.spec": "sweepspec.schema",
    "store.store": "store.queries",
    "cluster.cluster": "cluster.connection",
    "tuning.sweep": "tuning.driver",
    "analysis.results": "analysis.schemas",
    "training.method": "training.airbench_method",
    "service.notify": "usecases.notify",
}


def renamed(old: str) -> str | None:
    """An old path under cifar_sweeps. that no longer exists -> its path now (or None)."""
    if old in RENAMED:
        return RENAMED[old]
    top, _, rest = old.partition(".")
    return f"{RENAMED[top]}.{rest}" if rest and top in RENAMED and "." not in RENAMED[top] else None


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        # The import system reads the module back from sys.modules after this call, so the
        # old name resolves to the new module object itself (classes keep one identity).
        sys.modules[module.__name__] = importlib.import_module(self.target)


class _OldPaths(importlib.abc.MetaPathFinder):
    """The flat layout's names, answered only where no module of that name exists now."""

    def find_spec(self, fullname: str, path, target=None) -> importlib.machinery.ModuleSpec | None:
        head, _, old = fullname.partition(".")
        if head != "cifar_sweeps" or old not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Alias(f"cifar_sweeps.{MOVED[old]}"))


class _Renamed(importlib.abc.MetaPathFinder):
    """The renamed folders' and modules' paths. First on the path: under an alias of a
    package (`cifar_sweeps.spec` is the sweepspec package), the path finder would find the
    package's modules again and load second copies of them under the old names."""

    def find_spec(self, fullname: str, path, target=None) -> importlib.machinery.ModuleSpec | None:
        head, _, old = fullname.partition(".")
        new = renamed(old) if head == "cifar_sweeps" else None
        return importlib.machinery.ModuleSpec(fullname, _Alias(f"cifar_sweeps.{new}")) if new else None


def install() -> None:
    if not any(isinstance(f, _Renamed) for f in sys.meta_path):
        sys.meta_path.insert(0, _Renamed())
    if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
        sys.meta_path.append(_OldPaths())
