"""The device bundle's repair (benchmarks/gpu_bundle.py): what the shared builder drops and a
GPU machine needs comes back from the wheel: `ray.data` (Ray 2.60's `ray.air` imports it)
and the executable bits of Ray's servers (zipfile extraction loses them)."""

from __future__ import annotations

import os
import stat
import zipfile

from benchmarks.gpu_bundle import restore


def _wheel(path):
    with zipfile.ZipFile(path, "w") as z:
        for name, mode in [
            ("ray/__init__.py", 0o644),
            ("ray/data/__init__.py", 0o644),
            ("ray/data/tests/test_x.py", 0o644),
            ("ray/core/src/ray/raylet/raylet", 0o755),
            ("ray/serve/__init__.py", 0o644),
        ]:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | mode) << 16
            z.writestr(info, "x")
    return path


def test_restore_brings_back_ray_data_and_the_executable_bits_only(tmp_path):
    site = tmp_path / "site"
    (site / "ray/core/src/ray/raylet").mkdir(parents=True)
    server = site / "ray/core/src/ray/raylet/raylet"
    server.write_text("x")
    server.chmod(0o644)  # as zipfile.extract leaves it
    (site / "ray/__init__.py").write_text("x")

    changed = restore(site, _wheel(tmp_path / "ray.whl"))

    assert (site / "ray/data/__init__.py").is_file()
    assert not (site / "ray/data/tests").exists()  # never loaded by a sweep
    assert not (site / "ray/serve").exists()  # dropped by the builder, stays dropped
    assert os.access(server, os.X_OK)
    assert not os.access(site / "ray/__init__.py", os.X_OK)
    assert changed == 2
    assert restore(site, tmp_path / "ray.whl") == 0  # a second repair changes nothing
