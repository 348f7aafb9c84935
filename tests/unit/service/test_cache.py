"""The GET response cache: fresh hits, stale-while-refreshing, one computation per view
under a burst, and mutations that leave no stale read behind."""

from __future__ import annotations

import asyncio

from cifar_sweeps.service.cache import ResponseCache
from cifar_sweeps.store import lifecycle


class CountingApp:
    """An ASGI app whose answer is its call count, taking `delay_s` to compute."""

    def __init__(self, delay_s: float = 0.0, status: int = 200):
        self.calls, self.delay_s, self.status = 0, delay_s, status

    async def __call__(self, scope, receive, send):
        self.calls += 1
        n = self.calls
        await asyncio.sleep(self.delay_s)
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": str(n).encode()})


async def get(cache: ResponseCache, path: str = "/leaderboard", query: bytes = b"", method: str = "GET") -> bytes:
    out: list[bytes] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.body":
            out.append(message["body"])

    await cache({"type": "http", "method": method, "path": path, "query_string": query}, receive, send)
    return b"".join(out)


def test_fresh_hits_and_keys():
    async def main():
        app = CountingApp()
        cache = ResponseCache(app, ttl_s=60)
        assert [await get(cache) for _ in range(5)] == [b"1"] * 5
        assert await get(cache, query=b"model=mlp") == b"2"  # another view, another entry
        assert await get(cache, path="/trials/x") == b"3"  # not a cached route
        assert await get(cache, path="/trials/x") == b"4"
        assert app.calls == 4

    asyncio.run(main())


def test_burst_of_misses_computes_once():
    async def main():
        app = CountingApp(delay_s=0.2)
        cache = ResponseCache(app, ttl_s=60)
        answers = await asyncio.gather(*(get(cache) for _ in range(50)))
        assert set(answers) == {b"1"} and app.calls == 1

    asyncio.run(main())


def test_stale_is_served_while_one_refresh_runs():
    async def main():
        app = CountingApp(delay_s=0.3)
        cache = ResponseCache(app, ttl_s=0.5)
        assert await get(cache) == b"1"
        await asyncio.sleep(0.6)  # stale now, within the second ttl
        answers = await asyncio.gather(*(get(cache) for _ in range(20)))
        assert set(answers) == {b"1"}  # all stale: nobody waited for the refresh (it answers "2")
        await asyncio.sleep(0.4)
        assert app.calls == 2 and await get(cache) == b"2"  # one refresh, now served fresh
        await asyncio.sleep(1.1)  # past 2 * ttl: too old to serve, computed again
        assert await get(cache) == b"3"

    asyncio.run(main())


def test_mutation_clears_and_drops_answers_computed_before_it():
    async def main():
        app = CountingApp(delay_s=0.2)
        cache = ResponseCache(app, ttl_s=60)
        slow = asyncio.create_task(get(cache))  # computing from the state before the POST
        await asyncio.sleep(0.05)
        await get(cache, path="/sweeps", method="POST")
        after = await get(cache)  # must not share the pre-POST computation
        assert await slow == b"1" and after == b"3"
        assert await get(cache) == b"3" and app.calls == 3  # the post-POST answer is the one kept

    asyncio.run(main())


def test_errors_are_not_cached():
    async def main():
        app = CountingApp(status=404)
        cache = ResponseCache(app, ttl_s=60)
        assert [await get(cache) for _ in range(3)] == [b"1", b"2", b"3"]

    asyncio.run(main())


def test_unchanged_store_makes_a_stale_answer_fresh_without_recomputing():
    async def main():
        app, version = CountingApp(), ["v1"]
        cache = ResponseCache(app, ttl_s=0.3, version=lambda key: version[0])
        assert await get(cache) == b"1"
        for _ in range(3):  # stale three times over, the store unchanged: revalidated, not recomputed
            await asyncio.sleep(0.35)
            assert await get(cache) == b"1"
            await asyncio.sleep(0.05)
        assert app.calls == 1
        version[0] = "v2"  # a commit by a sweep driver
        await asyncio.sleep(0.35)
        assert await get(cache) == b"1"  # served stale while the refresh runs
        await asyncio.sleep(0.05)
        assert await get(cache) == b"2" and app.calls == 2

    asyncio.run(main())


def test_cheap_version_serves_an_old_unchanged_answer_and_recomputes_only_a_changed_one():
    async def main():
        app, version, asked = CountingApp(), ["v1"], []

        def current(key):
            asked.append(key)
            return version[0]

        cache = ResponseCache(app, ttl_s=0.1, version=current, cheap_version=True)
        assert await get(cache) == b"1"
        await asyncio.sleep(0.35)  # past twice the TTL: without a version, this would recompute
        assert await get(cache) == b"1" and app.calls == 1 and len(asked) == 2
        version[0] = "v2"
        await asyncio.sleep(0.35)
        assert await get(cache) == b"2" and app.calls == 2  # changed and too old to serve stale

    asyncio.run(main())


def test_junk_parameters_share_one_entry_and_the_cache_stays_under_its_byte_bound(tmp_path):
    """40 variants of a large CSV with junk parameters: one entry at most (the same
    answer), and the bytes held never pass the bound, whatever is asked."""
    from fastapi.testclient import TestClient

    from cifar_sweeps.service.api import create_app
    from cifar_sweeps.service.cache import ResponseCache
    from cifar_sweeps.settings import Settings
    from cifar_sweeps.store.queries import get_store
    from tests.helpers.jobs import FakeJobs
    from tests.helpers.specs import GOOD

    settings = Settings(results_dir=tmp_path, cache_ttl_s=60)
    store = get_store(settings.resolved_store_url())
    sweep = store.create_sweep(GOOD, "synthetic:100", "v")
    for i in range(300):
        lifecycle.trial_started(store, sweep.id, f"t{i}", {"model": "mlp", "lr": i / 1000, "note": "x" * 200}, 2)
    app = create_app(settings, FakeJobs(store))
    client = TestClient(app)
    cache = next(m for m in _middlewares(app) if isinstance(m, ResponseCache))
    cache.max_bytes = 1_000_000  # small enough that a few views fill it
    first = client.get("/leaderboard.csv?limit=100000").content
    for i in range(40):
        r = client.get(f"/leaderboard.csv?limit=100000&junk{i}={'y' * i}")
        assert r.content == first
    assert len(cache.entries) == 1 and cache.bytes == len(first)
    for limit in range(1, 200, 7):  # distinct views, each an entry, evicted oldest first
        client.get(f"/leaderboard?limit={limit}")
        assert cache.bytes <= cache.max_bytes
    assert cache.bytes == sum(len(e.body) for e in cache.entries.values())
    assert len(cache.entries) < 1 + len(range(1, 200, 7))  # some were evicted to stay under it


def _middlewares(app):
    app.middleware_stack = app.middleware_stack or app.build_middleware_stack()
    m = app.middleware_stack
    while m is not None:
        yield m
        m = getattr(m, "app", None)


def test_every_query_parameter_of_a_cached_route_is_in_the_cache_key(tmp_path):
    """A query parameter left out of the key would answer ?group=config with the ungrouped
    page cached for the same path: the key is what the routes declare, read from the app's
    routes, so it matches the app's own OpenAPI document; junk parameters stay out."""
    from fastapi.testclient import TestClient

    from cifar_sweeps.service.api import create_app
    from cifar_sweeps.service.cache import CACHED_PREFIXES, ResponseCache, cache_key, key_params
    from cifar_sweeps.settings import Settings

    app = create_app(Settings(results_dir=tmp_path))
    paths = app.openapi()["paths"]
    names = {
        p["name"]
        for path, ops in paths.items()
        if path.startswith(CACHED_PREFIXES) and "get" in ops
        for p in ops["get"].get("parameters", [])
        if p["in"] == "query"
    }
    assert {"group", "sort", "x", "y", "limit", "sweep_id", "filter"} <= names
    assert key_params(app) == names
    assert cache_key("/leaderboard", b"limit=5&junk=1&group=config", key_params(app)) == (
        b"/leaderboard?group=config&limit=5"
    )
    with TestClient(app) as client:
        client.get("/leaderboard?limit=5")
    cache = next(m for m in _middlewares(app) if isinstance(m, ResponseCache))
    assert cache._key_params == names  # what the live middleware keys by


def test_only_a_mutation_that_succeeded_clears_it():
    class Refusing(CountingApp):
        async def __call__(self, scope, receive, send):
            if scope["method"] == "GET":
                return await super().__call__(scope, receive, send)
            ok = scope["path"].endswith("/stop")
            await send({"type": "http.response.start", "status": 200 if ok else 422, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    async def main():
        app = Refusing()
        cache = ResponseCache(app, ttl_s=60)
        assert await get(cache) == b"1"
        for method, path in (("POST", "/sweeps"), ("OPTIONS", "/"), ("HEAD", "/leaderboard"), ("BREW", "/sweeps")):
            await get(cache, path=path, method=method)  # refused or no mutation at all
        assert await get(cache) == b"1" and app.calls == 1  # still cached
        await get(cache, path="/sweeps/sw-1/stop", method="POST")  # a mutation that succeeded
        assert await get(cache) == b"2"

    asyncio.run(main())


def test_a_plan_or_a_prediction_changes_nothing_and_clears_nothing():
    async def main():
        app = CountingApp()
        cache = ResponseCache(app, ttl_s=60)
        assert await get(cache) == b"1"
        await get(cache, path="/sweeps/plan", method="POST")  # answered 200: it read, it wrote nothing
        await get(cache, path="/trials/sw-1-t1/predict", method="POST")
        assert await get(cache) == b"1" and app.calls == 3  # still the first answer
        await get(cache, path="/sweeps", method="POST")  # a submit that succeeded
        assert await get(cache) == b"5"

    asyncio.run(main())
