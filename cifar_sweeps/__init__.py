"""cifar-sweeps: hyperparameter sweeps for CIFAR-10 classifiers on Ray Tune.

The Python API (sdk.py): `run`, `open_sweep`, `leaderboard`, `load_model`, `export_model`,
`list_models`, `SweepRun`. They load lazily: `import cifar_sweeps` loads neither torch nor Ray.
"""

from cifar_sweeps import moved as _moved
from cifar_sweeps.version import __version__, code_version

_moved.install()  # the modules' old paths, for experiments pickled before the layers (moved.py)

API = ("run", "open_sweep", "leaderboard", "load_model", "export_model", "list_models", "SweepRun")
__all__ = [*API, "__version__", "code_version"]


def __getattr__(name: str):
    # Loaded on first use, after every module has loaded: the package itself imports nothing,
    # so `from cifar_sweeps.sweepspec import spaces` anywhere never pulls in the Python API's imports.
    if name in API:
        import importlib

        return getattr(importlib.import_module("cifar_sweeps.sdk"), name)
    raise AttributeError(f"module 'cifar_sweeps' has no attribute {name!r}")
