"""The API's process loads neither torch nor Ray (the use cases import tuning lazily, in the
driver only)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.helpers.paths import PKG

LIGHT = textwrap.dedent("""
    import sys
    from fastapi.testclient import TestClient
    from cifar_sweeps.service.api import create_app
    from cifar_sweeps.settings import Settings
    app = create_app(Settings(results_dir=sys.argv[1]))
    r = TestClient(app).get("/leaderboard")
    assert r.status_code == 200, r.text
    print(sorted(m for m in ("torch", "ray", "torchvision", "hyperopt") if m in sys.modules))
    print([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmRSS")][0])
""")


@pytest.mark.integration
def test_the_api_process_loads_neither_torch_nor_ray(tmp_path):
    p = subprocess.run(
        [sys.executable, "-c", LIGHT, str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=PKG.parent
    )
    assert p.returncode == 0, p.stderr[-3000:]
    loaded, rss_kb = p.stdout.splitlines()
    assert loaded == "[]", loaded
    print(f"API process after GET /leaderboard: RSS {int(rss_kb) // 1024} MiB")
