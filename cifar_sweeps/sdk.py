"""The Python API, for notebooks and scripts: run a spec, read its leaderboard, load or
export its best model. The same spec, settings and store as the command line, through the
same use cases (`run` below and `cifar-sweeps run` both call usecases/drive.py's `run_local`):
nothing here is a second way.

    import cifar_sweeps as cs

    sweep = cs.run("quickstart", data="synthetic:2000", set={"fixed.epochs": 2})
    print(sweep.status, sweep.best().val_acc)
    model = sweep.load_best_model()            # a ModelFile: .model, .classes, .image_size, ...
    sweep.export_best("best.onnx")             # preprocessing inside, class names in its metadata

`import cifar_sweeps` loads neither torch nor Ray: each function imports what it needs. The
names are the package's own: none is a module's (cifar_sweeps.training.export, .models and .sweep are
modules, so the functions are export_model, list_models and open_sweep).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cifar_sweeps.errors import CifarSweepsError, NotFound

if TYPE_CHECKING:
    from cifar_sweeps.settings import Settings
    from cifar_sweeps.store.queries import Store
    from cifar_sweeps.sweepspec.schema import SweepSpec
    from cifar_sweeps.training.train import ModelFile
    from cifar_sweeps.usecases.leaderboard import LeaderboardItem


def settings_for(data: str | None = None, results_dir: str | Path | None = None, store_url: str | None = None):
    """The CLI's settings (CIFAR_SWEEPS_* variables), with these arguments beating them."""
    from cifar_sweeps.settings import load_settings

    over = {k: v for k, v in (("data", data), ("results_dir", results_dir), ("store_url", store_url)) if v}
    return load_settings(**over)


def open_store(settings: Settings) -> Store:
    from cifar_sweeps.store.queries import get_store

    return get_store(settings.resolved_store_url())


def load_spec(spec: str | Path | dict[str, Any], settings: Settings, edits: dict[str, Any] | None = None) -> SweepSpec:
    """A spec from a dict, a JSON file, or a preset's name; `edits` as `run --set`
    (dotted keys into the spec: {"fixed.epochs": 2})."""
    from cifar_sweeps.sweepspec.schema import apply_overrides, load_spec_file, parse_spec

    base = parse_spec(spec, settings) if isinstance(spec, dict) else load_spec_file(spec, settings)
    if not edits:
        return base
    raw = base.model_dump(mode="json", exclude_unset=True)
    return parse_spec(apply_overrides(raw, [f"{k}={json.dumps(v)}" for k, v in edits.items()]), settings)


@dataclass(frozen=True)
class SweepRun:
    """A sweep in the store, as the Python API hands it back (the store's row is `store.Sweep`)."""

    id: str
    settings: Settings

    @property
    def status(self) -> str:
        return open_store(self.settings).sweep(self.id).status

    def leaderboard(self, top: int = 10) -> list[LeaderboardItem]:
        return leaderboard(sweep=self.id, top=top, settings=self.settings)

    def best(self) -> LeaderboardItem:
        rows = self.leaderboard(top=1)
        if not rows or rows[0].val_acc is None:
            raise NotFound(f"sweep {self.id} has no trial with a validation score yet")
        return rows[0]

    def load_best_model(self) -> ModelFile:
        return load_model(self.best().trial_id, settings=self.settings)

    def export_best(self, path: str | Path, format: str = "onnx") -> Path:  # noqa: A002
        return export_model(self.best().trial_id, path, format, settings=self.settings)


def run(
    spec: str | Path | dict[str, Any],
    data: str | None = None,
    results_dir: str | Path | None = None,
    store_url: str | None = None,
    set: dict[str, Any] | None = None,  # noqa: A002 (the CLI's --set)
    quiet: bool = False,
) -> SweepRun:
    """Run a sweep to its end here (a local Ray runtime, or RAY_ADDRESS's cluster) and return
    it; the spec is a dict, a JSON file or a preset name, as `cifar-sweeps run` takes."""
    from cifar_sweeps.usecases.drive import run_local

    settings = settings_for(data, results_dir, store_url)
    store = open_store(settings)
    sweep_id, _ = run_local(load_spec(spec, settings, set), settings, store, echo=(lambda _: None) if quiet else print)
    return SweepRun(sweep_id, settings)


def open_sweep(sweep_id: str, results_dir: str | Path | None = None, store_url: str | None = None) -> SweepRun:
    """A stored sweep by id (NotFound naming it if the store has none)."""
    settings = settings_for(None, results_dir, store_url)
    open_store(settings).sweep(sweep_id)
    return SweepRun(sweep_id, settings)


def leaderboard(
    sweep: str | None = None,
    dataset: str | None = None,
    model: str | None = None,
    top: int = 20,
    settings: Settings | None = None,
) -> list[LeaderboardItem]:
    """The leaderboard's rows, best first (GET /leaderboard's items)."""
    from cifar_sweeps.usecases.leaderboard import BoardQuery, read_board

    store = open_store(settings or settings_for())
    query = BoardQuery(sweep_id=sweep, model=model, limit=top, dataset=dataset)
    return read_board(store, query, lambda t: t.checkpoint_path)[0]


def load_model(trial_id: str, settings: Settings | None = None) -> ModelFile:
    """A trial's best model, ready to call: .model (eval mode), .classes, .image_size and
    its input statistics (.mean, .std), as `predict` uses them."""
    from cifar_sweeps.store.artifacts import local_model_file
    from cifar_sweeps.training.train import read_model_file

    trial = open_store(settings or settings_for()).trial(trial_id)
    if not trial.checkpoint_path:
        raise CifarSweepsError(f"trial {trial_id} has no checkpoint yet")
    with local_model_file(trial.checkpoint_path, trial_id) as path:
        return read_model_file(path)


def export_model(trial_id: str, path: str | Path, format: str = "onnx", settings: Settings | None = None) -> Path:  # noqa: A002
    """A trial's best model as ONNX or TorchScript (usecases/export.py), preprocessing inside."""
    from cifar_sweeps.usecases.export import export_to

    settings = settings or settings_for()
    return export_to(open_store(settings), trial_id, format, settings.cache_dir / "exports", path)  # type: ignore[arg-type]


def list_models() -> list[dict[str, Any]]:
    """Every model a spec may name (registry.py), as dicts."""
    from cifar_sweeps.sweepspec import registry

    return [m.model_dump() for m in registry.models().values()]
