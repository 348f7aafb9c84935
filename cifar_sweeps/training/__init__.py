"""Training with torch: data sources, the training loop, export, prediction, staged
weights. The models, airbench's method, the loader, the probe and the meta-device build are
this layer's own (the probe and the build run as child processes, named by module).

The face: the modules other layers may import (tests/unit/project/test_structure.py holds it).
"""

__all__ = ["data", "export", "predict", "train", "weights"]
