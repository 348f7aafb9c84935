"""The presets: the sweep specs of search_spaces/, which ship inside the package as
cifar_sweeps/sweepspec/presets (a link to that folder in a checkout, its files in a wheel), found
through importlib.resources here and nowhere else."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from cifar_sweeps.errors import SpecError


def _folder() -> Traversable:
    return files("cifar_sweeps.sweepspec").joinpath("presets")


def names() -> list[str]:
    return sorted(p.name.removesuffix(".json") for p in _folder().iterdir() if p.name.endswith(".json"))


def read(name: str) -> str:
    """The preset's JSON text, or SpecError naming the presets there are."""
    if name not in names():
        raise SpecError(f"no preset {name!r}; presets: {', '.join(names())}")
    return _folder().joinpath(f"{name}.json").read_text()


def spec_text(arg: str) -> str:
    """A spec given on the command line: a JSON file's text, or a preset's by name."""
    p = Path(arg)
    if p.is_file():
        return p.read_text()
    if p.suffix == ".json" or "/" in arg:
        raise SpecError(f"spec file {arg!r} does not exist")
    return read(arg)
