"""Hostile input on every route: each a 4xx with a clear message, and the store unchanged."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from tests.helpers.jobs import FakeJobs
from tests.helpers.specs import GOOD

TOKEN = {"Authorization": "Bearer tok"}
JSON = {"content-type": "application/json", **TOKEN}


def _body(**over) -> bytes:
    return json.dumps({**GOOD, **over}).encode()


def _nested(depth: int) -> bytes:
    return b'{"name": "x", "fixed": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


def _nested_choice(depth: int) -> bytes:
    """A choice of an object whose key is a choice of an object ... `depth` times."""
    inner: dict = {"type": "choice", "values": [0.01, 0.02]}
    for _ in range(depth):
        inner = {"type": "choice", "values": [{"lr": inner}]}
    return _body(fixed={"model": "mlp"}, params={"space": inner})


def _wide_branches(keys: int, values: int) -> bytes:
    """One choice of one object with `keys` searched choices of `values` each: values**keys settings."""
    obj = {
        "model": "mlp",
        **{
            k: {"type": "choice", "values": [2**i for i in range(values)]}
            for k in ("batch_size", "epochs", "seed", "step_size", "crop_padding")[:keys]
        },
    }
    return _body(fixed={}, params={"arch": {"type": "choice", "values": [obj]}})


# (what, method, url, raw body or None, headers, expected status)
CASES = [
    ("choice of objects nested 150 deep", "POST", "/sweeps", _nested_choice(150), JSON, {422}),
    ("choice of objects nested 300 deep", "POST", "/sweeps", _nested_choice(300), JSON, {422}),
    ("3.2 M combinations in one choice", "POST", "/sweeps", _wide_branches(5, 20), JSON, {422}),
    (
        "learning rate 1e400 (infinity)",
        "POST",
        "/sweeps",
        _body().replace(b'"model": "mlp"', b'"model": "mlp", "momentum": 1e400'),
        JSON,
        {422},
    ),
    ("eval_batch_size 1e9", "POST", "/sweeps", _body(fixed={"model": "mlp", "eval_batch_size": 10**9}), JSON, {422}),
    (
        "HTML in a parameter name",
        "POST",
        "/sweeps",
        _body(params={"<a href=//evil.example>x</a>": {"type": "choice", "values": [{"lr": 0.1}]}}),
        JSON,
        {422},
    ),
    (
        "a formula where no draw lands",
        "POST",
        "/sweeps",
        _body(
            params={
                "arch": {
                    "type": "choice",
                    "values": [*({"lr": 0.001 * (i + 1)} for i in range(900)), '=HYPERLINK("http://evil.example","x")'],
                }
            }
        ),
        JSON,
        {422},
    ),
    ("deeply nested JSON", "POST", "/sweeps", _nested(50_000), JSON, {400, 422}),
    ("10 MB body", "POST", "/sweeps", b'{"name": "' + b"x" * 10_000_000 + b'"}', JSON, {413}),
    ("Content-Length that lies", "POST", "/sweeps", b"{}", {**JSON, "content-length": "999999999999"}, {413}),
    ("NaN bound", "POST", "/sweeps", _body().replace(b'"low": 0.001', b'"low": NaN'), JSON, {422}),
    ("Infinity bound", "POST", "/sweeps", _body().replace(b'"high": 0.1', b'"high": Infinity'), JSON, {422}),
    ("huge num_samples", "POST", "/sweeps", _body(num_samples=10**30), JSON, {422}),
    ("huge epochs", "POST", "/sweeps", _body(fixed={"model": "mlp", "epochs": 10**40}), JSON, {422}),
    ("float epochs", "POST", "/sweeps", _body(fixed={"model": "mlp", "epochs": 10.5}), JSON, {422}),
    (
        "negative learning rate",
        "POST",
        "/sweeps",
        _body(fixed={"model": "mlp"}, params={"lr": {"type": "uniform", "low": -0.5, "high": 0.1}}),
        JSON,
        {422},
    ),
    ("unicode name", "POST", "/sweeps", _body(name="sweep-\u2603\U0001f600"), JSON, {422}),
    ("path traversal name", "POST", "/sweeps", _body(name="../../etc/passwd"), JSON, {422}),
    ("NUL in name", "POST", "/sweeps", _body(name="a\x00b"), JSON, {422}),
    ("duplicated keys", "POST", "/sweeps", b'{"name": "a", "name": "b", "fixed": {"model": "mlp"}}', JSON, {422}),
    ("wrong content type", "POST", "/sweeps", _body(), {"content-type": "text/plain", **TOKEN}, {415}),
    (
        "form body",
        "POST",
        "/sweeps",
        b"name=a&num_samples=2",
        {"content-type": "application/x-www-form-urlencoded", **TOKEN},
        {415},
    ),
    ("JSON array body", "POST", "/sweeps", b"[1, 2, 3]", JSON, {422}),
    ("JSON string body", "POST", "/sweeps", b'"sweep"', JSON, {422}),
    ("empty body", "POST", "/sweeps", b"", JSON, {422}),
    ("null where a number goes", "POST", "/sweeps", _body(num_samples=None), JSON, {422}),
    (
        "huge choice",
        "POST",
        "/sweeps",
        _body(params={"batch_size": {"type": "choice", "values": list(range(1, 5000))}}),
        JSON,
        {422},
    ),
    ("unknown model", "POST", "/sweeps", _body(fixed={"model": "mlp; rm -rf /"}), JSON, {422}),
    ("SQL in model filter", "GET", "/leaderboard?model=mlp'%3B%20DROP%20TABLE%20sweeps%3B--", None, {}, {422}),
    ("SQL in sweep filter", "GET", "/leaderboard?sweep_id=x'%20OR%20'1'%3D'1", None, {}, {422}),
    ("negative limit", "GET", "/leaderboard?limit=-5", None, {}, {422}),
    ("zero limit", "GET", "/sweeps?limit=0", None, {}, {422}),
    ("huge limit", "GET", "/leaderboard?limit=100000000", None, {}, {422}),
    ("huge offset", "GET", "/sweeps?offset=100000000000000000000", None, {}, {422}),
    ("non-numeric limit", "GET", "/leaderboard?limit=ten", None, {}, {422}),
    ("path traversal sweep id", "GET", "/sweeps/..%2F..%2Fetc%2Fpasswd", None, {}, {404}),
    ("path traversal checkpoint", "GET", "/trials/..%2F..%2F..%2Fetc%2Fpasswd/checkpoint", None, {}, {404}),
    ("unicode trial id", "GET", "/trials/%E2%98%83%F0%9F%98%80", None, {}, {404}),
    ("very long id", "GET", "/sweeps/" + "a" * 5000, None, {}, {404}),
    ("traversal search space", "GET", "/search-spaces/..%2F..%2Fpyproject", None, {}, {404}),
    ("stop unknown sweep", "POST", "/sweeps/sw-0000000000/stop", None, TOKEN, {404}),
    ("resume unknown sweep", "POST", "/sweeps/sw-0000000000/resume", None, TOKEN, {404}),
    (
        "unicode bearer token",
        "POST",
        "/sweeps",
        _body(),
        {"content-type": "application/json", "authorization": "Bearer t\u00f6k".encode("latin-1")},
        {401},
    ),
    ("status filter injection", "GET", "/sweeps?status=running'--", None, {}, {422}),
]
# POST /sweeps/plan takes the same body as POST /sweeps: every hostile body, planned instead.
PLAN_CASES = [
    (f"plan: {what}", method, "/sweeps/plan", body, headers, expected)
    for what, method, url, body, headers, expected in CASES
    if method == "POST" and url == "/sweeps"
]
CASES += PLAN_CASES


@pytest.fixture
def app(tmp_path):
    settings = Settings(results_dir=tmp_path, api_token="tok", max_body_bytes=1_000_000)
    store = get_store(settings.resolved_store_url())
    existing = store.create_sweep({**GOOD, "name": "keep-me"}, "synthetic:100", "v")
    return TestClient(create_app(settings, FakeJobs(store)), raise_server_exceptions=False), store, existing


def _snapshot(store):
    rows, total = store.list_sweeps(limit=1000)
    return total, sorted((s.id, s.status, json.dumps(s.spec, sort_keys=True)) for s in rows)


def test_there_are_at_least_25_cases():
    assert len(CASES) >= 25


@pytest.mark.parametrize("what,method,url,body,headers,expected", CASES, ids=[c[0] for c in CASES])
def test_hostile_input(app, what, method, url, body, headers, expected):
    client, store, existing = app
    before = _snapshot(store)
    r = client.request(method, url, content=body, headers=headers)
    assert r.status_code in expected, (r.status_code, r.text[:500])
    detail = r.json()["detail"]
    assert detail and isinstance(detail, str) and "Traceback" not in detail
    assert "tok" not in r.text.replace("token", "")  # the token never leaks into an error
    assert _snapshot(store) == before
    assert store.get_sweep(existing.id).spec["name"] == "keep-me"


@pytest.mark.parametrize(
    "value,cell",
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("simple_cnn", "simple_cnn"),
        (-0.5, -0.5),
        (None, ""),
        (3, 3),
    ],
)
def test_csv_cells_never_run_as_formulas(value, cell):
    from cifar_sweeps.usecases.leaderboard import csv_cell

    assert csv_cell(value) == cell


def test_the_csv_neutralises_a_formula_in_a_stored_config(tmp_path):
    """A store written by an older version, or by hand, may hold any string in a config:
    the CSV a user opens in a spreadsheet still shows it as text."""
    settings = Settings(results_dir=tmp_path)
    store = get_store(settings.resolved_store_url())
    sweep = store.create_sweep({**GOOD, "name": "old"}, "synthetic:100", "v")
    tid = lifecycle.trial_started(store, sweep.id, "t1", {"model": "mlp", "note": "=1+1"}, 2)
    client = TestClient(create_app(settings, FakeJobs(store)))
    text = client.get("/leaderboard.csv").text
    assert tid in text and ",'=1+1" in text and ",=1+1" not in text
