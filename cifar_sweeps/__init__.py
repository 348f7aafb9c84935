"""cifar-sweeps: hyperparameter sweeps for CIFAR-10 classifiers on Ray Tune.

The Python API (sdk.py): `run`, `open_sweep`, `leaderboard`, `load_model`, `export_model`,
`list_models`, `SweepRun`. They load lazily: `import cifar_sweeps` loads neither torch nor Ray.
"""

from cifar_sweeps import moved as _moved

_moved.install()  # the modules' old paths, for experiments pickled before the layers (moved.py)

__version__ = "0.1.0"
API = ("run", "open_sweep", "leaderboard", "load_model", "export_model", "list_models", "SweepRun")
__all__ = [*API, "code_version"]


def __getattr__(name: str):
    # Loaded on first use, after every module has loaded: the package itself imports nothing,
    # so `from cifar_sweeps.spec import spaces` anywhere never pulls in the Python API's imports.
    if name in API:
        import importlib

        return getattr(importlib.import_module("cifar_sweeps.sdk"), name)
    raise AttributeError(f"module 'cifar_sweeps' has no attribute {name!r}")


def code_version() -> str:
    """The package version, plus the git commit when run from a checkout."""
    import subprocess
    from pathlib import Path

    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except Exception:
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__
