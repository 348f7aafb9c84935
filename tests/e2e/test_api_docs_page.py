"""The API docs page works with no internet: a real `cifar-sweeps serve` on loopback, its
/docs in headless Chromium with every request off the machine refused; Swagger UI draws the
service's operations from files the service serves itself."""

from __future__ import annotations

import shutil
from urllib.parse import urlparse

import pytest

from tests.helpers.served import loopback_service

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium (scripts/test.sh installs it)"),
]


def test_the_api_docs_page_draws_the_operations_offline(tmp_path):
    from playwright.sync_api import sync_playwright

    from tests.helpers.served_process import launch_chromium, record_page_errors

    outside: list[str] = []
    errors: list[str] = []
    with loopback_service(tmp_path) as (base, _), sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()

        def only_this_machine(route):
            if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
                return route.continue_()
            outside.append(route.request.url)
            return route.abort()

        page.route("**/*", only_this_machine)
        record_page_errors(page, errors, lambda status: status < 400)
        page.goto(f"{base}/docs")
        page.wait_for_selector(".swagger-ui .opblock-summary-path")
        assert "cifar-sweeps" in page.inner_text(".swagger-ui .info .title")
        paths = page.locator(".swagger-ui .opblock-summary-path").all_inner_texts()
        assert "/sweeps" in paths and "/leaderboard" in paths and len(paths) > 20
        browser.close()
    assert outside == [] and errors == [], (outside, errors)
