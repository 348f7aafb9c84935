"""The package's version, and the code's (with the git commit in a checkout): a bottom
module, so that the layers that stamp it on sweeps and answers depend on nothing above."""

from __future__ import annotations

__version__ = "0.1.0"


def code_version() -> str:
    """The package version, plus the git commit when run from a checkout."""
    import subprocess
    from pathlib import Path

    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except Exception:
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__
