"""A short-lived cache of GET responses for the read-heavy routes (leaderboard, sweeps).

Many clients polling the same views (the page refreshes every 5 s) get the same bytes,
served without touching the database or the thread pool:
- fresh for `ttl_s` seconds;
- then, for another `ttl_s`, served stale while one background task refreshes it (a
  client never waits for the database on a hot view: no latency spike at expiry). The
  refresh first asks the store for the view's data version (one cheap query): if nothing
  it shows was committed since the answer was computed, the answer is simply fresh again
  (a view of one sweep depends on that sweep's version only: writes to other sweeps leave
  it valid). Where the store answers that cheaply (an SQLite file: a PRAGMA, in
  microseconds) it is asked on the event loop at every expiry, and an unchanged view is
  served at once however old it is: only views whose data changed are ever recomputed;
- a view that nobody has in cache is computed once however many clients ask at the same
  moment (the others wait for that answer);
- a mutating request (POST, PUT, PATCH, DELETE) through this process that succeeded clears
  it; a refused one, HEAD, OPTIONS or any other method leaves it as it is. Writes by sweep
  drivers show up within 2 * ttl_s;
- it is keyed by the path and the query parameters the cached routes declare (others change
  no answer, so junk parameters can't make a new entry), and bounded in bytes: least
  recently used answers go first, and one answer over an eighth of the bound is never kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, urlencode

CACHED_PREFIXES = ("/leaderboard", "/sweeps")
MAX_BYTES = 64 * 2**20  # bytes of cached answers, over every entry
MUTATIONS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# POSTs that read and change nothing (a plan, a prediction): they leave the cache as it is.
READ_ONLY_POSTS = ("/sweeps/plan", "/predict")


@dataclass(frozen=True)
class Entry:
    at: float  # time.monotonic() when computed (or last found unchanged)
    headers: list
    body: bytes
    version: str | None  # the store's data version it was computed from


class ResponseCache:
    def __init__(
        self,
        app,
        ttl_s: float,
        max_entries: int = 2048,
        version: Callable[[bytes], str | None] = lambda key: None,
        cheap_version: bool = False,
        max_bytes: int = MAX_BYTES,
    ):
        self.app, self.ttl_s, self.max_entries, self.version = app, ttl_s, max_entries, version
        self.cheap_version = cheap_version  # ask `version` on the loop, not in a thread
        self.max_bytes, self.bytes = max_bytes, 0
        self.entries: OrderedDict[bytes, Entry] = OrderedDict()  # least recently used first
        self.inflight: dict[bytes, asyncio.Future] = {}
        self.generation = 0  # bumped by every mutation: answers computed before it are dropped
        self._tasks: set[asyncio.Task] = set()
        self._key_params: frozenset[str] | None = None  # from the routes, on the first GET

    def key_params(self, scope) -> frozenset[str] | None:
        """The cache key's query parameters: those the cached GET routes declare (key_params),
        read from the app once its routes are all in; None (every parameter) under an app
        that declares none (a bare ASGI app)."""
        if self._key_params is None and hasattr(scope.get("app"), "openapi"):
            self._key_params = key_params(scope["app"])
        return self._key_params

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.ttl_s <= 0:
            return await self.app(scope, receive, send)
        if scope["method"] == "POST" and scope["path"].endswith(READ_ONLY_POSTS):
            return await self.app(scope, receive, send)
        if scope["method"] in MUTATIONS:
            return await self._mutate(scope, receive, send)
        if scope["method"] != "GET":  # HEAD, OPTIONS, junk: change nothing, cached or not
            return await self.app(scope, receive, send)
        if not scope["path"].startswith(CACHED_PREFIXES):
            return await self.app(scope, receive, send)
        key = cache_key(scope["path"], scope.get("query_string", b""), self.key_params(scope))
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        age = time.monotonic() - entry.at if entry else None
        if entry is not None and age < self.ttl_s:
            return await _send(entry, send)
        if entry is not None and self.cheap_version and self._still_valid(key, entry):
            return await _send(entry, send)
        if entry is not None and age < 2 * self.ttl_s:
            if key not in self.inflight:
                self._refresh_in_background(key, scope, entry)
            return await _send(entry, send)
        if key in self.inflight:  # someone is computing this view right now: share it
            entry = await asyncio.shield(self.inflight[key])
            if entry is not None:
                return await _send(entry, send)
        await self._compute(key, self._begin(key), scope, receive, send)

    async def _mutate(self, scope, receive, send) -> None:
        """A mutation through this process: once it has succeeded (2xx/3xx), no stale read
        after it. A refused one (a 4xx, a 5xx) changed nothing, and clears nothing."""
        status = 0

        async def watch(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if 200 <= status < 400:
                self.clear()

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0
        self.inflight.clear()
        self.generation += 1

    def _begin(self, key: bytes) -> asyncio.Future:
        """Marks the view as being computed (synchronously: no second computation can
        start between this and the app call)."""
        future = asyncio.get_running_loop().create_future()
        self.inflight[key] = future
        return future

    async def _compute(self, key: bytes, future: asyncio.Future, scope, receive, send) -> None:
        """Runs the app for this request, passing its answer through, and keeps a 200."""
        generation, at = self.generation, time.monotonic()
        version = await self._version(key)  # before: a commit during the app call counts
        status, headers, body = 0, [], []

        async def capture(message):
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], message.get("headers", [])
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
            await send(message)

        entry = None
        try:
            await self.app(scope, receive, capture)
            if status == 200:
                entry = Entry(at, headers, b"".join(body), version)
                if generation == self.generation:
                    self._store(key, entry)
        finally:
            self._release(key, future, entry)

    async def _unchanged(self, key: bytes, future: asyncio.Future, stale: Entry) -> bool:
        """Makes the stale entry fresh again if the store has not changed since."""
        generation, at = self.generation, time.monotonic()
        if stale.version is None or await self._version(key) != stale.version:
            return False
        if generation == self.generation and self.entries.get(key) is stale:
            self.entries[key] = replace(stale, at=at)
        self._release(key, future, self.entries.get(key))
        return True

    async def _version(self, key: bytes) -> str | None:
        return self.version(key) if self.cheap_version else await asyncio.to_thread(self.version, key)

    def _still_valid(self, key: bytes, entry: Entry) -> bool:
        """Makes an expired entry fresh again, synchronously, if its data is unchanged."""
        try:
            if entry.version is None or self.version(key) != entry.version:
                return False
        except Exception:  # the store can't say: compute, which reports the error properly
            return False
        self.entries[key] = replace(entry, at=time.monotonic())
        return True

    def _release(self, key: bytes, future: asyncio.Future, entry: Entry | None) -> None:
        """The view is no longer being computed; its waiters get `entry` (None: compute)."""
        if self.inflight.get(key) is future:
            del self.inflight[key]
        if not future.done():
            future.set_result(entry)

    def _store(self, key: bytes, entry: Entry) -> None:
        size = len(entry.body)
        if size > self.max_bytes // 8:
            return  # a huge page or CSV: recomputing it is cheaper than holding it
        old = self.entries.pop(key, None)
        self.bytes -= len(old.body) if old else 0
        while self.entries and (self.bytes + size > self.max_bytes or len(self.entries) >= self.max_entries):
            _, evicted = self.entries.popitem(last=False)
            self.bytes -= len(evicted.body)
        self.entries[key] = entry
        self.bytes += size

    def _refresh_in_background(self, key: bytes, scope, stale: Entry) -> None:
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def discard(_message):
            pass

        future = self._begin(key)

        async def run():
            with contextlib.suppress(Exception):  # a failed refresh leaves the entry to expire
                if await self._unchanged(key, future, stale):
                    return
                await self._compute(key, future, dict(scope), receive, discard)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._tasks.discard)


def cache_key(path: str, query: bytes, known: frozenset[str] | None) -> bytes:
    """The path and the `known` query parameters (None: all), in a canonical order."""
    given = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    pairs = sorted((k, v) for k, v in given if known is None or k in known)
    return path.encode() + b"?" + urlencode(pairs).encode()


def key_params(app) -> frozenset[str]:
    """Every query parameter a cached GET route declares, as the app's OpenAPI document lists
    them (its dependencies' included): a new parameter is in the key as soon as its route
    declares it, with no list to keep."""
    return frozenset(
        q["name"]
        for path, ops in app.openapi()["paths"].items()
        if path.startswith(CACHED_PREFIXES) and "get" in ops
        for q in ops["get"].get("parameters", [])
        if q["in"] == "query"
    )


async def _send(entry: Entry, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": entry.headers})
    await send({"type": "http.response.body", "body": entry.body})


class ViewVersions:
    """The version a cached GET view depends on (ResponseCache's `version`): one sweep's
    data_version for a view of one sweep (`/sweeps/<id>`, `/leaderboard?...sweep_id=<id>`),
    the store's otherwise. On SQLite this costs a PRAGMA (microseconds) while nothing is
    committed, and one query for all sweeps' versions after each commit."""

    def __init__(self, store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._sweeps: tuple[str | None, dict[str, int]] = (None, {})  # as of the store version in [0]

    def __call__(self, key: bytes) -> str | None:
        store_version = self.store.data_version()
        sweep_id = sweep_of_view(key.decode("latin-1"))
        if sweep_id is None:
            return store_version
        if store_version is None:
            return f"{sweep_id}:{self.store.sweep_version(sweep_id)}"
        with self._lock:
            if self._sweeps[0] != store_version:  # something was committed: read all at once
                self._sweeps = (store_version, self.store.sweep_versions())
            return f"{sweep_id}:{self._sweeps[1].get(sweep_id)}"


def sweep_of_view(key: str) -> str | None:
    """The sweep a GET view shows alone, from its cache key (path?query), or None."""
    path, _, query = key.partition("?")
    if path.startswith("/sweeps/") and path.count("/") == 2:
        return path.removeprefix("/sweeps/")
    if path == "/leaderboard":
        ids = [v for k, _, v in (p.partition("=") for p in query.split("&")) if k == "sweep_id"]
        return ids[0] if len(ids) == 1 and ids[0] else None
    return None
