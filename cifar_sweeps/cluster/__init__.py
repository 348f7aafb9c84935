"""The Ray cluster: finding or starting a head, its dashboard and token, its resources as a
plan counts them, and the Ray Jobs client that submits, stops and follows sweeps.

The face: the modules other layers may import (tests/unit/project/test_structure.py holds it).
"""

__all__ = ["connection", "jobs", "resources"]
