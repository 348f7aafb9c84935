"""Builds the device bundle (.device/) for the GPU check and repairs what the shared builder
drops: Ray 2.60's `ray.air` imports `ray.data` at import time (Tune fails without it), and
Python's zipfile loses the wheel's executable bits (Ray's gcs_server and raylet would not
start). Run from the project's root on a machine with a package registry:

    python benchmarks/gpu_bundle.py            # .device/: site.tar.xz, the archive, activate.sh
    bash benchmarks/gpu_check.sh               # then, on the GPU machine

Optuna and Alembic join the bundle (the preset's searcher and the store's migrations).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILDER = ROOT.parent / "shared" / "device" / "make-bundle.sh"
EXTRA = "optuna alembic mako colorlog"
KEEP = ("ray/data/",)  # parts of Ray the builder drops that a Tune sweep imports
SKIP = ("ray/data/tests/",)


def restore(site: Path, wheel: Path, keep: tuple[str, ...] = KEEP, skip: tuple[str, ...] = SKIP) -> int:
    """Extracts the wheel's members under `keep` (but not `skip`) into `site` and gives every
    extracted file of the wheel its executable bits back. Returns the files it changed."""
    changed = 0
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            name = info.filename
            if name.endswith("/"):
                continue
            target = site / name
            if name.startswith(keep) and not name.startswith(skip) and not target.exists():
                z.extract(info, site)
                changed += 1
            mode = (info.external_attr >> 16) & 0o777
            if mode & 0o111 and target.is_file() and not os.access(target, os.X_OK):
                target.chmod(mode)
                changed += 1
    return changed


def ray_wheel(dest: Path, version: str) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
        + ["--python-version", "3.12", "--implementation", "cp", "-d", str(dest)]
        + [
            a
            for p in ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
            for a in ("--platform", p)
        ]
        + [f"ray=={version}"],
        check=True,
    )
    return next(dest.glob("ray-*.whl"))


def repair(bundle: Path, version: str) -> None:
    archive = bundle / "site.tar.xz"
    with tempfile.TemporaryDirectory() as tmp:
        site, wheels = Path(tmp, "site"), Path(tmp, "wheels")
        wheels.mkdir()
        with tarfile.open(archive, "r:xz") as t:
            t.extractall(site, filter="tar")  # keeps the modes restore() sets right
        n = restore(site, ray_wheel(wheels, version))
        with tarfile.open(archive, "w:xz", preset=6) as t:
            t.add(site, arcname=".")
    print(f"repaired {archive}: {n} files restored or made executable; {archive.stat().st_size / 1e6:.1f} MB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ray", default="2.60.0", help="Ray's version in the bundle (the project's own)")
    ap.add_argument("--repair-only", action="store_true", help="repair an existing .device/ only")
    args = ap.parse_args(argv)
    if not args.repair_only:
        env = {**os.environ, "EXTRA_PACKAGES": EXTRA, "RAY_VERSION": args.ray}
        subprocess.run(["bash", str(BUILDER)], cwd=ROOT, env=env, check=True)
    repair(ROOT / ".device", args.ray)
    return 0


if __name__ == "__main__":
    sys.exit(main())
