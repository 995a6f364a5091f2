"""The daemon's operator endpoints, on ``ops.listen``: ``/healthz``, ``/readyz`` and ``/metrics``.

``/healthz`` says the process and its event loop answer (a liveness probe restarts a hung daemon);
``/readyz`` says it can do its job: the state store answers, the mirror's folder is writable, and
every shop's last run began within ``ops.stale_schedules`` schedule periods (a shop gets that long
after the daemon starts before it counts). ``/metrics`` is Prometheus text (``metrics.py``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ordersync.config import Settings
from ordersync.errors import OrderSyncError
from ordersync.metrics import REGISTRY, StateCollector
from ordersync.state.store import StateStore

if TYPE_CHECKING:
    from ordersync.webhooks.receiver import OnQueued

log = structlog.get_logger("ordersync.ops")


def readiness(settings: Settings, store: StateStore, started: datetime, now: datetime) -> list[str]:
    """What keeps the daemon from being ready, in words; empty when it is ready."""
    from ordersync.state import records

    problems = []
    try:
        with store.engine.connect() as con:
            con.execute(text("SELECT 1"))
    except Exception as exc:
        return [f"state store {store.shown}: {type(exc).__name__}: {exc}"]
    folder = settings.mirror.path.resolve().parent
    if not os.access(folder, os.W_OK):
        problems.append(f"mirror folder {folder} is not writable")
    limit = settings.ops.stale_schedules
    for shop in settings.shops:
        period = shop.schedule.period(now)
        last = records.last_runs(store, shop.name, 1)
        since = max(last[0].started_at, started) if last else started  # a grace period after a start
        if (now - since).total_seconds() > limit * period:
            problems.append(f"shop {shop.name}: no run began in the last {limit:g} schedule periods")
    return problems


def ops_app(
    settings: Settings, store: StateStore, on_webhook: OnQueued | None = None, shops: set[str] | None = None
) -> Starlette:
    """The endpoints; with ``on_webhook``, also the WooCommerce webhook receiver (webhooks/receiver.py)."""
    started = datetime.now(UTC)
    state = StateCollector(settings, store)
    boot = time.monotonic()

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "alive", "uptime_seconds": round(time.monotonic() - boot, 1)})

    async def readyz(_: Request) -> Response:
        problems = await asyncio.to_thread(readiness, settings, store, started, datetime.now(UTC))
        return JSONResponse(
            {"status": "ready" if not problems else "not ready", "problems": problems},
            status_code=200 if not problems else 503,
        )

    async def metrics(_: Request) -> Response:
        body = await asyncio.to_thread(_scrape, state)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    routes = [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]
    if on_webhook is not None:
        from ordersync.webhooks.receiver import webhook_routes

        routes += webhook_routes(settings, store, on_webhook, shops)
    return Starlette(routes=routes)


def _scrape(state: StateCollector) -> bytes:
    """The process's own metrics, then the state store's, in one exposition."""
    from prometheus_client import CollectorRegistry

    scratch = CollectorRegistry(auto_describe=False)
    scratch.register(state)
    return generate_latest(REGISTRY) + generate_latest(scratch)


async def serve_ops(
    settings: Settings, store: StateStore, on_webhook: OnQueued | None = None, shops: set[str] | None = None
) -> tuple[uvicorn.Server, asyncio.Task[Any]]:
    """Start the endpoints on ``ops.listen`` in this event loop. The port is bound here first, so a
    port in use is one clear error before the daemon schedules anything."""
    assert settings.ops.listen is not None
    host, _, port = settings.ops.listen.rpartition(":")
    host = host.strip("[]")
    try:
        sock = socket.create_server(
            (host, int(port)), family=socket.AF_INET6 if ":" in host else socket.AF_INET
        )
    except OSError as exc:
        raise OrderSyncError(
            f"ops.listen {settings.ops.listen}: cannot listen there: {exc.strerror or exc}"
        ) from None
    config = uvicorn.Config(
        ops_app(settings, store, on_webhook, shops), log_level="warning", lifespan="off", log_config=None
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the daemon owns signals
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if task.done():
        task.result()
    endpoints = ["/healthz", "/readyz", "/metrics"]
    if on_webhook is not None:
        endpoints.append("/webhooks/woocommerce/{shop}")
    log.info("ops.listening", listen=settings.ops.listen, endpoints=endpoints)
    return server, task
