"""Where things are, for tests at any depth of tests/ (the tiers are folders)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "cifar_sweeps"
