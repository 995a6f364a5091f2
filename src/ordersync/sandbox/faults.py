"""Fault injection for the sandbox shops: latency, 429, 5xx, hangs, HTML pages, broken JSON and outages.

Random faults come from a seeded RNG so a failing run can be replayed; scripted faults let a test say
"the next two list requests answer 503" and know exactly what the client saw.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
    b"</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Fault:
    status: int = 503
    body: bytes = b'{"status": "error", "message": "Service temporarily unavailable"}'
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0
    apply_first: bool = False
    """The shop does the request, then its answer is lost (a proxy answers in its place): the case
    a client cannot tell from a request that never arrived."""

    @classmethod
    def lost_after_apply(cls) -> Fault:
        return cls(status=502, body=NGINX_502, content_type="text/html", apply_first=True)

    @classmethod
    def server_error(cls, status: int = 503) -> Fault:
        return cls(status=status)

    @classmethod
    def rate_limited(cls, retry_after: int = 1) -> Fault:
        return cls(
            status=429,
            body=b'{"status": "error", "message": "Too many requests"}',
            headers={"Retry-After": str(retry_after)},
        )

    @classmethod
    def html(cls, status: int = 502) -> Fault:
        return cls(status=status, body=NGINX_502, content_type="text/html")

    @classmethod
    def bad_json(cls) -> Fault:
        return cls(status=200, body=b'{"status": "success", "total": 10, "orders": [{"id": 1, ')

    @classmethod
    def hang_for(cls, seconds: float) -> Fault:
        return cls(hang=seconds)


@dataclass(frozen=True)
class FaultConfig:
    latency_ms: float = 0.0
    workers: int = 0
    """Requests the shop serves at once, as PHP-FPM's ``pm.max_children``: more wait in line, so a
    client that sends more only makes each answer slower. 0: no limit."""
    rate_429: float = 0.0
    retry_after: int = 1
    rate_5xx: float = 0.0
    rate_timeout: float = 0.0
    timeout_seconds: float = 30.0
    rate_html: float = 0.0
    rate_bad_json: float = 0.0
    seed: int = 0
    outage_after: int = 0
    """Requests served before the shop goes down for ``outage_seconds`` (502 pages)."""
    outage_seconds: float = 0.0


class FaultInjector:
    """ASGI middleware in front of a sandbox app; counts every request it sees by path."""

    def __init__(self, app: ASGIApp, config: FaultConfig | None = None):
        self.app = app
        self.config = config or FaultConfig()
        self._rng = random.Random(self.config.seed)
        self._scripts: list[tuple[str, list[Fault]]] = []
        self._lock = threading.Lock()
        self.request_count: Counter[str] = Counter()
        self.faults_served = 0
        self._outage: tuple[int, float, Fault] | None = None
        self._outage_ends: float | None = None
        self._workers: asyncio.Semaphore | None = None
        self.busiest = 0
        """The most requests served at once (the ``workers`` in use, or everything in flight)."""
        self._serving = 0
        if self.config.outage_seconds:
            self.outage(self.config.outage_seconds, after=self.config.outage_after)

    def outage(self, seconds: float, *, after: int = 0, fault: Fault | None = None) -> None:
        """After ``after`` more requests, answer every request with ``fault`` (nginx's 502 page, as
        when php-fpm is down) for ``seconds`` of wall time; then serve normally again."""
        with self._lock:
            self._outage = (after, seconds, fault or Fault.html(502))
            self._outage_ends = None

    def _outage_fault(self) -> Fault | None:
        """Called under the lock for each request."""
        if self._outage is None:
            return None
        after, seconds, fault = self._outage
        if after > 0:
            self._outage = (after - 1, seconds, fault)
            return None
        now = time.monotonic()
        if self._outage_ends is None:
            self._outage_ends = now + seconds
        if now < self._outage_ends:
            return fault
        self._outage = self._outage_ends = None
        return None

    def script(self, path_contains: str, faults: list[Fault]) -> None:
        """The next requests whose path and query contain ``path_contains`` get these faults, in turn."""
        with self._lock:
            self._scripts.append((path_contains, list(faults)))

    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            down = self._outage_fault()
            if down is not None:
                return down
            for needle, queue in self._scripts:
                if needle in path and queue:
                    return queue.pop(0)
            c = self.config
            draw = self._rng.random()
        for rate, fault in (
            (c.rate_429, Fault.rate_limited(c.retry_after)),
            (c.rate_5xx, Fault.server_error(503)),
            (c.rate_timeout, Fault.hang_for(c.timeout_seconds)),
            (c.rate_html, Fault.html()),
            (c.rate_bad_json, Fault.bad_json()),
        ):
            if draw < rate:
                return fault
            draw -= rate
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        with self._lock:
            self.request_count[path] += 1
        if self.config.workers:
            self._workers = self._workers or asyncio.Semaphore(self.config.workers)
            async with self._workers:
                await self._serve(scope, receive, send, path)
        else:
            await self._serve(scope, receive, send, path)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        self._serving += 1
        self.busiest = max(self.busiest, self._serving)
        try:
            await self._answer(scope, receive, send, path)
        finally:
            self._serving -= 1

    async def _answer(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000)
        query = scope.get("query_string", b"").decode("latin-1")
        fault = self._next_fault(f"{path}?{query}" if query else path)
        if fault is None:
            await self.app(scope, receive, send)
            return
        self.faults_served += 1
        if fault.apply_first:

            async def discard(message: Message) -> None:
                return None

            await self.app(scope, receive, discard)
        if fault.hang:
            await asyncio.sleep(fault.hang)
        headers: list[tuple[bytes, bytes]] = [
            (b"content-type", fault.content_type.encode()),
            (b"content-length", str(len(fault.body)).encode()),
            *[(k.lower().encode(), v.encode()) for k, v in fault.headers.items()],
        ]
        await send({"type": "http.response.start", "status": fault.status, "headers": headers})
        await send({"type": "http.response.body", "body": fault.body})

    def total_requests(self, path_contains: str = "") -> int:
        with self._lock:
            return sum(n for p, n in self.request_count.items() if path_contains in p)
