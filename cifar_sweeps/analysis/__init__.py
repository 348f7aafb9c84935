"""Reading what sweeps measured, and planning the next: rankings and intervals, filters,
comparisons, importance, progress, warm starts, plans and throughput, replays on tables,
and the response models of these reads. Torch- and Ray-free.

The face: the modules other layers may import (tests/unit/project/test_structure.py holds it).
"""

__all__ = ["compare", "filters", "importance", "plan", "progress", "ranking", "replay", "schemas", "throughput", "warm"]
