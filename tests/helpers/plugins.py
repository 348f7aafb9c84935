"""A fake plug-in distribution (entry points of its own) installed into a temporary site folder."""

from __future__ import annotations

import sys
import textwrap

import pytest

from cifar_sweeps.sweepspec import registry

FAKENETS = """
from torch import nn


def build(num_classes=10, channels=8):
    return nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(channels, num_classes))


build.model_args = {"channels": {"type": "int", "low": 4, "high": 64}}


def bad_shape(num_classes=10):
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes + 1))


def spy(num_classes=10):
    # What a plug-in's code can see of the process that builds it, as its error message.
    import json
    import os
    import resource
    import sys

    seen = {
        "secrets": sorted(k for k in os.environ if k.startswith(("CIFAR_SWEEPS_API", "WANDB", "CIFAR_SWEEPS_STORE"))),
        "cwd": os.getcwd(),
        "path_has_cwd": any(p in ("", os.getcwd()) for p in sys.path),
        "data_limit_mb": resource.getrlimit(resource.RLIMIT_DATA)[0] >> 20,
        "own_group": os.getpgid(0) == os.getpid(),
        "hub_offline": os.environ.get("HF_HUB_OFFLINE"),
    }
    raise ValueError("SPY" + json.dumps(seen) + "YPS")


def raises(num_classes=10, depth=1):
    if depth > 2:
        raise ValueError(f"depth {depth} is too deep for this net")
    return build(num_classes)
"""


def install_fake_plugin(site) -> None:
    """A real installed distribution, as pip leaves one: a module and its dist-info with
    entry points (one named like a zoo model, which must not shadow the zoo)."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "fakenets.py").write_text(FAKENETS)
    info = site / "fakenets-0.2.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakenets\nVersion: 0.2\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [cifar_sweeps.models]
            widenet = fakenets:build
            badshape = fakenets:bad_shape
            raises = fakenets:raises
            spy = fakenets:spy
            airbench = fakenets:build
            """
        )
    )


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    install_fake_plugin(site)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", f"{site}:{sys.path[0]}")  # the check's own process finds it too
    registry.rescan()
    yield site
    registry.rescan()
    sys.modules.pop("fakenets", None)
