"""API behaviour that needs no Ray: validation, auth, limits, reads (TestClient, real SQLite)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from tests.helpers.jobs import FakeJobs
from tests.helpers.specs import AUTH, GOOD


@pytest.fixture
def setup(tmp_path):
    settings = Settings(results_dir=tmp_path, api_token="s3cret-token", max_body_bytes=100_000, max_num_samples=50)
    store = get_store(settings.resolved_store_url())
    jobs = FakeJobs(store)
    return TestClient(create_app(settings, jobs)), store, jobs


def _count(store):
    return store.list_sweeps()[1]


@pytest.mark.parametrize(
    "body,field",
    [
        ({**GOOD, "fixed": {"model": "vgg"}}, "fixed.model"),
        ({**GOOD, "params": {"lr": {"type": "uniform", "low": -1, "high": 0.1}}}, "params.lr"),
        ({**GOOD, "num_samples": 10_000}, "num_samples"),
        ({**GOOD, "bogus": 1}, "bogus"),
        ({**GOOD, "params": {"lr": {"type": "choice", "values": []}}}, "params.lr"),
    ],
)
def test_bad_specs_422_naming_the_field(setup, body, field):
    client, store, _ = setup
    r = client.post("/sweeps", json=body, headers=AUTH)
    assert r.status_code == 422 and field in r.json()["detail"], r.json()
    assert _count(store) == 0


def test_malformed_json_422(setup):
    client, store, _ = setup
    r = client.post("/sweeps", content=b"{not json", headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422 and _count(store) == 0


def test_unknown_ids_404(setup):
    client, _, _ = setup
    for url in ("/sweeps/sw-nope", "/trials/nope", "/trials/nope/checkpoint", "/search-spaces/nope"):
        r = client.get(url, headers=AUTH)
        assert r.status_code == 404 and "nope" in r.json()["detail"]
    assert client.get("/trials/nope/checkpoint").status_code == 401  # a model file is behind the token
    for url in ("/sweeps/sw-nope/stop", "/sweeps/sw-nope/resume"):
        assert client.post(url, headers=AUTH).status_code == 404


def test_stop_a_queued_sweep(setup):
    """A sweep still in the queue stops at once; stopping it again is a 409 naming its status."""
    client, store, _ = setup
    sweep_id = client.post("/sweeps", json=GOOD, headers=AUTH).json()["id"]
    r = client.post(f"/sweeps/{sweep_id}/stop", headers=AUTH)
    assert r.status_code == 200 and r.json()["id"] == sweep_id and r.json()["status"] == "stopped"
    assert store.get_sweep(sweep_id).stop_requested
    r = client.post(f"/sweeps/{sweep_id}/stop", headers=AUTH)
    assert r.status_code == 409 and "is stopped" in r.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}, {"Authorization": "Basic s3cret-token"}],
)
def test_token_required_for_mutations(setup, headers):
    client, store, _ = setup
    r = client.post("/sweeps", json=GOOD, headers=headers)
    assert r.status_code == 401 and "s3cret" not in r.text
    assert _count(store) == 0
    sweep = store.create_sweep(GOOD, "synthetic:100", "t")
    for verb in ("stop", "resume"):
        assert client.post(f"/sweeps/{sweep.id}/{verb}", headers=headers).status_code == 401
    assert store.get_sweep(sweep.id).status == "queued" and not store.get_sweep(sweep.id).stop_requested


def test_create_with_token(setup):
    client, store, jobs = setup
    r = client.post("/sweeps", json=GOOD, headers=AUTH)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "queued" and body["id"] == jobs.created[0]
    assert client.get(f"/sweeps/{body['id']}").json()["spec"]["fixed"]["model"] == "mlp"


def test_oversized_body_413(setup):
    client, store, _ = setup
    big = {**GOOD, "description": "x" * 200_000}
    r = client.post("/sweeps", json=big, headers=AUTH)
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert _count(store) == 0


def test_ray_down_503_nothing_stored(tmp_path):
    settings = Settings(results_dir=tmp_path)
    store = get_store(settings.resolved_store_url())
    client = TestClient(create_app(settings, FakeJobs(store, up=False)))
    r = client.post("/sweeps", json=GOOD)
    assert r.status_code == 503 and "Ray" in r.json()["detail"]
    assert _count(store) == 0


def test_ray_down_503_with_real_jobs_client(tmp_path):
    """The real Jobs class against a port where nothing listens."""
    settings = Settings(results_dir=tmp_path, dashboard_url="http://127.0.0.1:9")
    client = TestClient(create_app(settings))
    r = client.post("/sweeps", json=GOOD)
    assert r.status_code == 503 and "not reachable" in r.json()["detail"]
    assert client.get("/sweeps").json()["total"] == 0
    assert client.get("/health").json()["ray"] == "unreachable"
    assert client.get("/livez").json()["status"] == "ok"  # liveness: the process, nothing else


def test_livez_answers_while_the_store_is_down(tmp_path):
    settings = Settings(results_dir=tmp_path, dashboard_url="http://127.0.0.1:9")
    store = get_store(settings.resolved_store_url())
    client = TestClient(create_app(settings, FakeJobs(store)))
    store.ping = lambda: (_ for _ in ()).throw(RuntimeError("the store is down"))  # a PostgreSQL blip
    assert client.get("/health").status_code == 503
    assert client.get("/livez").status_code == 200


def test_reads(setup):
    client, store, _ = setup
    assert client.get("/health").json()["store"] == "ok"
    names = [s["name"] for s in client.get("/search-spaces").json()["items"]]
    assert "quickstart" in names and "report-tpe" in names
    assert client.get("/search-spaces/report-tpe").json()["fixed"]["model"] == "resnet50"
    assert client.get("/leaderboard").json() == {"items": [], "total": 0, "limit": 50, "offset": 0}
    assert client.get("/leaderboard?limit=0").status_code == 422
    assert client.get("/sweeps?offset=-1").status_code == 422
    assert client.get("/").headers["content-type"].startswith("text/html")
    assert client.get("/openapi.json").status_code == 200


def test_relative_data_path_becomes_absolute(tmp_path, monkeypatch):
    (tmp_path / "d.tar.xz").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert Settings(data="d.tar.xz").data == str(tmp_path / "d.tar.xz")
    assert Settings(data="synthetic:10").data == "synthetic:10"
    assert Settings(data="torchvision").data == "torchvision"


def test_progress_of_a_running_sweep(setup):
    from cifar_sweeps.store import lifecycle

    client, store, _ = setup
    sweep = store.create_sweep({"name": "p", "num_samples": 4, "max_concurrent_trials": 4}, "synthetic:10", "v")
    lifecycle.claim(store, sweep.id, "h", 1, "/x")
    done = lifecycle.trial_started(store, sweep.id, "t1", {"model": "mlp"}, 3)
    for e in (1, 2, 3):
        store.trial_epoch(
            done,
            {
                "epoch": e,
                "train_loss": 1,
                "train_acc": 0.5,
                "val_loss": 1,
                "val_acc": 0.5,
                "lr": 0.1,
                "seconds": 2,
                "images_per_s": 1,
                "time_total_s": 2.0 * e,
            },
        )
    lifecycle.trial_ended(store, done, "terminated")
    run = lifecycle.trial_started(store, sweep.id, "t2", {"model": "mlp"}, 3)
    store.trial_epoch(
        run,
        {
            "epoch": 1,
            "train_loss": 1,
            "train_acc": 0.5,
            "val_loss": 1,
            "val_acc": 0.5,
            "lr": 0.1,
            "seconds": 2,
            "images_per_s": 1,
            "time_total_s": 2.0,
        },
    )
    p = client.get(f"/sweeps/{sweep.id}").json()["progress"]
    assert (p["trials_total"], p["trials_done"], p["epochs_done"], p["seconds_per_epoch"]) == (4, 1, 4, 2.0)
    assert p["running"] == [{"trial_id": run, "epoch": 1, "epochs_budget": 3}]
    # 2 epochs left on the running trial + 2 unstarted trials at the mean budget of 3, at 2 s an
    # epoch, one trial at a time so far: 16 s.
    assert p["eta_s"] == pytest.approx(16.0)


def test_page_assets_are_served_by_the_app(setup):
    """The page, its script and plotly.js all come from the app (nothing from the internet),
    and the page learns whether submitting needs the token."""
    client, _, _ = setup
    html = client.get("/").text
    assert '<script src="/vendor/plotly.min.js">' in html and "https://" not in html
    js = client.get("/vendor/plotly.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert len(js.content) > 1_000_000 and b"plotly.js (strict" in js.content[:2000]
    csp = client.get("/").headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-eval" not in csp  # the strict build needs no eval
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/config.json").json()["token_required"] is True


def test_an_errored_trial_carries_its_reason_line(setup):
    from cifar_sweeps.usecases.leaderboard import error_line

    client, store, _ = setup
    sweep = store.create_sweep(GOOD, "synthetic:100", "v")
    tid = lifecycle.trial_started(store, sweep.id, "t1", {"model": "mlp", "lr": 50.0}, 2)
    trace = (
        'Traceback (most recent call last):\n  File "train.py", line 1, in <module>\n    fit()\n'
        "cifar_sweeps.errors.NonFiniteLossError: training loss became NaN or infinite in epoch 1 "
        "(model mlp, optimizer sgd, lr 50.0); try a lower learning rate\n\n"
    )
    lifecycle.trial_ended(store, tid, "errored", trace)
    (item,) = client.get("/leaderboard").json()["items"]
    assert item["error"] == error_line(trace) and item["error"].endswith("try a lower learning rate")
    assert client.get(f"/trials/{tid}").json()["error"] == trace
    assert error_line(None) is None and error_line("\n \n") is None and len(error_line("x" * 1000)) == 300


def test_queued_sweeps_are_capped(tmp_path):
    settings = Settings(results_dir=tmp_path, max_queued_sweeps=3)
    store = get_store(settings.resolved_store_url())
    client = TestClient(create_app(settings, FakeJobs(store)))  # FakeJobs leaves every sweep queued
    codes = [client.post("/sweeps", json=GOOD).status_code for _ in range(5)]
    assert codes == [201, 201, 201, 429, 429]
    r = client.post("/sweeps", json=GOOD)
    assert "3 sweeps are already queued" in r.json()["detail"] and r.headers["retry-after"] == "60"
    assert _count(store) == 3  # nothing stored past the cap


def test_a_spec_is_expanded_off_the_event_loop(setup, monkeypatch):
    """The submit-time checks expand the space: in the thread pool, never on the loop that
    answers every other request."""
    import asyncio

    from cifar_sweeps.sweepspec import schema as spec_module

    client, _, _ = setup
    on_loop = []
    real = spec_module.check_expanded

    def check(spec):
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return real(spec)

    monkeypatch.setattr(spec_module, "check_expanded", check)
    assert client.post("/sweeps", json=GOOD, headers=AUTH).status_code == 201
    assert on_loop == [False]
    doc = client.get("/openapi.json").json()  # documented as the spec it is
    assert doc["paths"]["/sweeps"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SweepSpec"
    }
    assert "params" in doc["components"]["schemas"]["SweepSpec"]["properties"]


def _ended_sweep(store, finished: bool):
    sweep = store.create_sweep({**GOOD, "scheduler": {"type": "fifo"}}, "synthetic:100", "v")
    lifecycle.claim(store, sweep.id, "host", 1, "/exp/" + sweep.id)
    tid = lifecycle.trial_started(store, sweep.id, "t1", {"model": "mlp", "lr": 0.01, "epochs": 2}, 2)
    if finished:
        store.trial_epoch(
            tid,
            {
                "epoch": 1,
                "train_loss": 1,
                "train_acc": 0.5,
                "val_loss": 1,
                "val_acc": 0.5,
                "lr": 0.01,
                "seconds": 1,
                "images_per_s": 1,
            },
        )
        lifecycle.trial_ended(store, tid, "terminated")
    lifecycle.finish(store, sweep.id) if finished else lifecycle.fail(store, sweep.id, lifecycle.Reason.DRIVER_ERROR)
    return store.get_sweep(sweep.id)


def _row(store, sweep_id):
    s = store.get_sweep(sweep_id)
    return (s.status, s.spec, s.ray_job_id, s.reason)


@pytest.mark.parametrize(
    "body,field",
    [
        ({"top": 0, "seeds": 3}, "top"),
        ({"top": 21, "seeds": 3}, "top"),
        ({"top": 2, "seeds": 1}, "seeds"),
        ({"top": 2, "seeds": 11}, "seeds"),
        ({"top": 2}, "seeds"),
        ({"top": 2, "seeds": 3, "x": 1}, "x"),
        ({"top": "2", "seeds": 3}, "top"),
    ],
)
def test_repeat_refuses_out_of_range_input_naming_the_field(setup, body, field):
    client, store, _ = setup
    sweep = _ended_sweep(store, finished=True)
    before = _row(store, sweep.id)
    r = client.post(f"/sweeps/{sweep.id}/repeat", json=body, headers=AUTH)
    assert r.status_code == 422 and field in r.json()["detail"], r.text
    assert _row(store, sweep.id) == before  # nothing stored


def test_repeat_refuses_a_running_sweep_one_with_nothing_to_repeat_and_unknown_ones(setup):
    client, store, jobs = setup
    running = store.create_sweep(GOOD, "synthetic:100", "v")
    lifecycle.claim(store, running.id, "host", 1, "/exp/r")
    empty = _ended_sweep(store, finished=False)
    for sweep, code, words in ((running, 409, "once it has ended"), (empty, 409, "nothing to repeat")):
        before = _row(store, sweep.id)
        r = client.post(f"/sweeps/{sweep.id}/repeat", json={"top": 1, "seeds": 3}, headers=AUTH)
        assert r.status_code == code and words in r.json()["detail"], r.text
        assert _row(store, sweep.id) == before
    assert client.post("/sweeps/sw-0000000000/repeat", json={"top": 1, "seeds": 3}, headers=AUTH).status_code == 404
    done = _ended_sweep(store, finished=True)
    assert client.post(f"/sweeps/{done.id}/repeat", json={"top": 1, "seeds": 3}).status_code == 401
    r = client.post(f"/sweeps/{done.id}/repeat", json={"top": 1, "seeds": 3}, headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text
    assert store.get_sweep(done.id).spec["repeat"] == {"top": 1, "seeds": 3} and jobs.drained == 1


def test_refit_queues_an_ended_sweep_and_refuses_a_running_one_an_empty_one_and_unknown_ones(setup):
    client, store, jobs = setup
    running = store.create_sweep(GOOD, "synthetic:100", "v")
    lifecycle.claim(store, running.id, "host", 1, "/exp/r")
    empty = _ended_sweep(store, finished=False)
    for sweep, words in ((running, "refit it once it has ended"), (empty, "nothing to refit")):
        before = _row(store, sweep.id)
        r = client.post(f"/sweeps/{sweep.id}/refit", headers=AUTH)
        assert r.status_code == 409 and words in r.json()["detail"], r.text
        assert _row(store, sweep.id) == before
    assert client.post("/sweeps/sw-0000000000/refit", headers=AUTH).status_code == 404
    done = _ended_sweep(store, finished=True)
    assert client.post(f"/sweeps/{done.id}/refit").status_code == 401
    r = client.post(f"/sweeps/{done.id}/refit", headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text
    assert store.get_sweep(done.id).spec["refit"] is True and jobs.drained == 1


def test_the_leaderboard_takes_a_plugin_name_with_a_hyphen_or_a_dot_and_ranks_a_refit_first(setup):
    client, store, _ = setup
    sw = store.create_sweep({"name": "p"}, "synthetic:10", "v")
    src, _ = store.create_trial(sw.id, "t1", {"model": "my-net.v2", "lr": 0.1}, 2)
    store.trial_epoch(
        src,
        {
            "epoch": 1,
            "train_loss": 1,
            "train_acc": 0.5,
            "val_loss": 0.5,
            "val_acc": 0.6,
            "lr": 0.1,
            "seconds": 1,
            "images_per_s": 10,
        },
    )
    refit, _ = store.create_trial(sw.id, "refit", {"model": "my-net.v2", "lr": 0.1}, 2, refit_of=src)
    body = client.get("/leaderboard", params={"model": "my-net.v2"}).json()
    assert [it["trial_id"] for it in body["items"]] == [refit, src]
    assert body["items"][0]["refit_of"] == src and body["items"][0]["val_acc"] == 0.6
    assert "refit_of" in client.get("/leaderboard.csv").text.splitlines()[0]
    assert client.get(f"/sweeps/{sw.id}").json()["best_trial"]["refit_of"] == src
    assert client.get("/leaderboard", params={"model": "../etc"}).status_code == 422


def test_answers_name_a_data_source_never_the_servers_path_to_it(setup):
    client, store, _ = setup
    sw = store.create_sweep({"name": "d"}, "/srv/secret/datasets/cifar10-png.tar.xz", "v")
    assert client.get(f"/sweeps/{sw.id}").json()["data_source"] == "cifar10-png.tar.xz"
    assert client.get("/sweeps").json()["items"][0]["data_source"] == "cifar10-png.tar.xz"
    assert store.sweep(sw.id).data_source == "/srv/secret/datasets/cifar10-png.tar.xz"  # the driver's, kept


def test_a_list_of_sweeps_carries_a_class_count_and_the_names_only_when_few(setup):
    client, store, _ = setup
    few = client.post("/sweeps", json=GOOD, headers=AUTH).json()["id"]
    many = client.post("/sweeps", json=GOOD, headers=AUTH).json()["id"]
    store.update_sweep(few, dataset="shapes", classes=["circle", "square", "triangle"])
    store.update_sweep(many, dataset="big", classes=[f"c{i}" for i in range(5000)])
    items = {s["id"]: s for s in client.get("/sweeps").json()["items"]}
    assert items[few]["classes"] == ["circle", "square", "triangle"] and items[few]["class_count"] == 3
    assert items[many]["classes"] is None and items[many]["class_count"] == 5000  # not 5,000 names per row
    one = client.get(f"/sweeps/{many}").json()
    assert len(one["classes"]) == 5000 and one["class_count"] == 5000  # the sweep itself has them all
