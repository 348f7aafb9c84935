"""The modules' old paths, from before the package was split into layers (spec, store,
training, analysis, cluster, tuning, service). Tune pickles a sweep's scheduler, callbacks
and stopper by module path, so an experiment interrupted under the flat layout names
`cifar_sweeps.schedulers` and the like; this finder answers those names with the modules
that now hold the code, on first import only (nothing is loaded ahead)."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

# old module (under cifar_sweeps.) -> its path now
MOVED: dict[str, str] = {
    **{m: f"spec.{m}" for m in ("config", "spaces", "spec", "presets", "registry")},
    **{m: f"store.{m}" for m in ("store", "states", "lifecycle", "migrations")},
    "storage": "store.artifacts",
    **{
        m: f"training.{m}"
        for m in ("data", "loader", "models", "weights", "train", "probe", "predict", "method", "precision", "export")
    },
    "modelcheck": "spec.modelcheck",
    "analysis": "analysis.importance",
    **{m: f"analysis.{m}" for m in ("ranking", "filters", "plan", "warm")},
    **{m: f"cluster.{m}" for m in ("cluster", "jobs")},
    **{m: f"tuning.{m}" for m in ("sweep", "trainable", "searchers", "schedulers", "tracking")},
    **{m: f"service.{m}" for m in ("api", "cache", "schemas", "routes")},
}
# An old name that is a package's now (`cifar_sweeps.store` was store.py) is found as the
# package (this finder comes last): `cifar_sweeps.store.Store` is not answered. No class of
# those four modules is pickled into an experiment (the scheduler, callbacks and stopper
# hold the store's URL, not a Store).


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
    def find_spec(self, fullname: str, path, target=None) -> importlib.machinery.ModuleSpec | None:
        head, _, old = fullname.partition(".")
        if head != "cifar_sweeps" or old not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Alias(f"cifar_sweeps.{MOVED[old]}"))


def install() -> None:
    if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
        sys.meta_path.append(_OldPaths())
