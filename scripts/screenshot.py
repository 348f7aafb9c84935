"""Refresh the docs' screenshot of the page's analysis view from a stored sweep (e.g. the
quickstart on the real CIFAR-10): serves the results folder's store on a free loopback
port, opens the page in headless Chromium, selects the sweep, and saves `#analysis`.

    python scripts/screenshot.py RESULTS_DIR SWEEP_ID [--out docs/analysis.png]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results_dir", type=Path)
    ap.add_argument("sweep_id")
    ap.add_argument("--out", type=Path, default=Path("docs/analysis.png"))
    args = ap.parse_args()

    import uvicorn
    from playwright.sync_api import sync_playwright

    from cifar_sweeps.service.api import create_app
    from cifar_sweeps.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:  # a copy: the page's reads never touch the original
        results = Path(tmp) / "results"
        shutil.copytree(args.results_dir, results, ignore=shutil.ignore_patterns("ray", "cache"))
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(Settings(results_dir=results)), port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#board tbody tr")
            page.select_option("#a-sweep", args.sweep_id)
            page.wait_for_selector("#a-importance .barlayer .trace", timeout=60_000)
            page.wait_for_selector("#a-parcoords .parcoords")
            time.sleep(1)  # plotly's transitions
            page.locator("#analysis").screenshot(path=str(args.out))
            browser.close()
        server.should_exit = True
        thread.join(30)  # the app's shutdown (its analysis worker) before the interpreter's
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB) from sweep {args.sweep_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
