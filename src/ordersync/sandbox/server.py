"""Serving sandbox shops on loopback: in a background thread (tests, the embedded default) or in the
foreground (``ordersync sandbox``)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from ordersync.config import ShopConfig, WebCommanderShop
from ordersync.sandbox.faults import FaultConfig, FaultInjector
from ordersync.sandbox.webcommander.app import create_app
from ordersync.sandbox.webcommander.store import WebCommanderStore


def _config(app: Any, host: str) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
    )


class SandboxServer:
    """Runs one ASGI app with uvicorn in a thread; ``base_url`` carries the port actually bound."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self.host = host
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port = self._socket.getsockname()[1]
        self.base_url = f"http://{host}:{self.port}"
        self._server = uvicorn.Server(_config(app, host))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"sandbox-{self.port}",
            daemon=True,
        )

    def __enter__(self) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox server on {self.base_url} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@contextmanager
def start_shop_sandbox(
    shop: ShopConfig, *, orders: int, seed: int, faults: FaultConfig | None = None, realistic: bool = False
) -> Iterator[str]:
    """A sandbox for one configured shop, with that shop's credentials and timezone; yields its URL."""
    if not isinstance(shop, WebCommanderShop):  # pragma: no cover - one platform so far
        raise NotImplementedError(f"no sandbox for platform {shop.platform!r}")
    store = WebCommanderStore(orders=orders, seed=seed, timezone=shop.timezone, realistic=realistic)
    app = create_app(
        store,
        uuid=shop.uuid.get_secret_value(),
        access_token=shop.access_token.get_secret_value(),
        faults=faults,
    )
    with SandboxServer(app) as server:
        yield server.base_url


def serve_webcommander(
    *,
    host: str,
    port: int,
    orders: int,
    seed: int,
    timezone: str,
    realistic: bool,
    faults: FaultConfig,
    uuid: str,
    access_token: str,
    max_page_size: int | None = None,
    ready: Any = None,
) -> None:
    """Serve until interrupted; ``ready`` is called with the base URL once the shop is listening."""
    store = WebCommanderStore(
        orders=orders, seed=seed, timezone=timezone, realistic=realistic, prerender=True
    )
    app: FaultInjector = create_app(
        store, uuid=uuid, access_token=access_token, faults=faults, max_page_size=max_page_size
    )
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    if ready is not None:
        original = server.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets=sockets)
            ready(f"http://{host}:{port}")

        server.startup = startup  # type: ignore[method-assign]
    server.run()
