"""What a sweep leaves: the SQL store (its tables and queries), statuses and their only
writer (lifecycle), artifact files, cleanup. Migrations run on open.

The face: the modules other layers may import (tests/unit/project/test_structure.py holds it).
"""

__all__ = ["artifacts", "cleanup", "lifecycle", "queries", "states", "tables"]
