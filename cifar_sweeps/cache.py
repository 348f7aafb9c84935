"""A short-lived cache of GET responses for the read-heavy routes (leaderboard, sweeps).

Many clients polling the same views (the page refreshes every 5 s) get the same bytes for
`ttl_s` seconds, served without touching the database or the thread pool. Any mutating
request through this process clears it; writes by sweep drivers show up within ttl_s.
"""

from __future__ import annotations

import time

CACHED_PREFIXES = ("/leaderboard", "/sweeps")


class ResponseCache:
    def __init__(self, app, ttl_s: float, max_entries: int = 2048):
        self.app, self.ttl_s, self.max_entries = app, ttl_s, max_entries
        self.entries: dict[bytes, tuple[float, int, list, bytes]] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.ttl_s <= 0:
            return await self.app(scope, receive, send)
        if scope["method"] != "GET":
            self.entries.clear()  # a mutation through this process: no stale reads after it
            return await self.app(scope, receive, send)
        if not scope["path"].startswith(CACHED_PREFIXES):
            return await self.app(scope, receive, send)
        key = scope["path"].encode() + b"?" + scope.get("query_string", b"")
        hit = self.entries.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl_s:
            _, status, headers, body = hit
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        captured: dict = {"body": []}

        async def capture(message):
            if message["type"] == "http.response.start":
                captured["status"], captured["headers"] = message["status"], message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        if captured.get("status") == 200:
            if len(self.entries) >= self.max_entries:
                self.entries.clear()
            self.entries[key] = (now, 200, captured["headers"], b"".join(captured["body"]))
