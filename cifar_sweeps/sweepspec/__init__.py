"""What a user writes: training configs, search spaces, sweep specs and their checks,
presets, the model registry (the zoo and plug-ins), metrics, searchers and schedulers.
Torch-, Ray- and SQL-free.

The face: the modules other layers may import (tests/unit/project/test_structure.py holds it); the rest
(autospace) is this layer's own.
"""

__all__ = [
    "config",
    "constraints",
    "epoch",
    "limits",
    "metrics",
    "modelcheck",
    "presets",
    "registry",
    "schedulers",
    "schema",
    "searchers",
    "spaces",
]
