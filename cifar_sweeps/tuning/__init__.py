"""A sweep as a Ray Tune run: the driver (driver.py) and this layer's own pieces (the
trainable, searchers' and schedulers' factories, the refit, PBT, continuations, live
limits, tracking, the replay's child process).

The face: the modules other layers may import (tests/unit/project/test_structure.py holds it); the use
cases drive a sweep through driver.py alone.
"""

__all__ = ["driver"]
