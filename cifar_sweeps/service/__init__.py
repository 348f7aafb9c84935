"""The HTTP API and its page (FastAPI): the app, its routes, middleware, response cache
and the prediction worker, all this layer's own; `serve` starts it.

The face: the modules other layers and the front ends may import (tests/unit/project/test_structure.py
holds it).
"""

__all__ = ["schemas", "serve"]
