"""Serving sandbox shops on loopback: in a background thread (tests, the embedded default) or in the
foreground (``ordersync sandbox``)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from ordersync.config import ShopConfig, WebCommanderShop
from ordersync.errors import OrderSyncError
from ordersync.sandbox.faults import FaultConfig, FaultInjector
from ordersync.sandbox.webcommander.app import Churn
from ordersync.sandbox.woocommerce.webhooks import WebhookFaults


def _config(app: Any, host: str, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        date_header=False,  # the apps send the shop's own (sandbox/http_date.py)
        **extra,
    )


class SandboxServer:
    """Runs one ASGI app with uvicorn in a thread; ``base_url`` carries the port actually bound."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
    ):
        self.app = app
        self.host = host
        self._tls = {"ssl_certfile": ssl_certfile, "ssl_keyfile": ssl_keyfile} if ssl_certfile else {}
        self._socket = self._bind(port)
        self.port = self._socket.getsockname()[1]
        scheme = "https" if ssl_certfile else "http"
        self.base_url = f"{scheme}://{host}:{self.port}"
        self._prepare()

    def _bind(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        return sock

    def _prepare(self) -> None:
        self._server = uvicorn.Server(_config(self.app, self.host, **self._tls))
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

    def go_down(self, seconds: float) -> None:
        """Stop listening for ``seconds`` (clients get connection refused), then serve again on the
        same port: a shop's PHP or web server restarting."""
        self.__exit__()
        time.sleep(seconds)
        self._socket = self._bind(self.port)
        self._prepare()
        self.__enter__()


@dataclass(frozen=True)
class WebCommanderListing:
    """Where the document leaves the listing open, which reading the WebCommander sandbox takes:
    ``max_cap`` orders per page at most (None: no cap), ``order`` newest or oldest first, and
    ``churn``, orders arriving while a client pages."""

    max_cap: int | None = 50
    order: str = "newest"
    churn: Churn | None = None


@dataclass(frozen=True)
class Oddities:
    """Records a real WebCommander shop has been seen to hold: ``oversized`` orders with a 200 KB
    customer name, and ``dst_fold`` orders stamped in the autumn hour that happens twice."""

    oversized: int = 0
    dst_fold: int = 0


def shop_app(
    shop: ShopConfig,
    *,
    orders: int,
    seed: int,
    faults: FaultConfig | None = None,
    realistic: bool = False,
    prerender: bool = False,
    listing: WebCommanderListing | None = None,
    oddities: Oddities | None = None,
    webhook_faults: WebhookFaults | None = None,
) -> FaultInjector:
    """A sandbox app for one configured shop, with that shop's credentials, timezone and currency;
    ``listing`` says how the WebCommander sandbox pages (by default the strictest reading)."""
    if isinstance(shop, WebCommanderShop):
        from ordersync.sandbox.webcommander.app import create_app
        from ordersync.sandbox.webcommander.store import WebCommanderStore

        listing = listing or WebCommanderListing()
        store = WebCommanderStore(
            orders=orders,
            seed=seed,
            timezone=shop.timezone,
            realistic=realistic,
            prerender=prerender,
            listing_order=listing.order,
        )
        if oddities is not None:
            store.add_oddities(oversized=oddities.oversized, dst_fold=oddities.dst_fold, seed=seed)
        admin = (
            {
                "client_id": shop.admin_api.client_id.get_secret_value(),
                "client_secret": shop.admin_api.client_secret.get_secret_value(),
            }
            if shop.admin_api is not None
            else {}
        )
        return create_app(
            store,
            uuid=shop.uuid.get_secret_value(),
            access_token=shop.access_token.get_secret_value(),
            faults=faults,
            max_page_size=listing.max_cap,
            churn=listing.churn,
            **admin,
        )
    from ordersync.sandbox.woocommerce.app import ApiKey
    from ordersync.sandbox.woocommerce.app import create_app as create_woo_app
    from ordersync.sandbox.woocommerce.store import WooCommerceStore

    # Links in payloads name the configured URL, not the port the sandbox happens to get: payloads,
    # and so content hashes, stay the same from run to run, as on a real shop.
    woo = WooCommerceStore(
        orders=orders, seed=seed, timezone=shop.timezone, currency=shop.currency, site_url=shop.base_url
    )
    if prerender:
        woo.prerender(shop.base_url)
    key = ApiKey(shop.consumer_key.get_secret_value(), shop.consumer_secret.get_secret_value(), "read_write")
    return create_woo_app(woo, keys=[key], faults=faults, webhook_faults=webhook_faults)


@contextmanager
def start_shop_sandbox(
    shop: ShopConfig,
    *,
    orders: int,
    seed: int,
    faults: FaultConfig | None = None,
    realistic: bool = False,
    listing: WebCommanderListing | None = None,
    oddities: Oddities | None = None,
) -> Iterator[str]:
    """Serve a sandbox for one configured shop on a free loopback port; yields its URL."""
    app = shop_app(
        shop, orders=orders, seed=seed, faults=faults, realistic=realistic, listing=listing, oddities=oddities
    )
    with SandboxServer(app) as server:
        yield server.base_url


@dataclass(frozen=True)
class Served:
    """One shop to serve in the foreground: its app, port and the line printed once it listens."""

    app: Any
    port: int
    banner: str


def serve_apps(shops: list[Served], *, host: str, ready: Callable[[str], None] | None = None) -> None:
    """Serve several sandbox shops from one process until interrupted; ``ready`` gets each banner
    (with ``{url}`` filled in) once every shop is listening, then ``"ready"``. A port that cannot be
    bound is one OrderSyncError naming host:port, before anything is served."""
    sockets = []
    for shop in shops:
        try:
            sockets.append(socket.create_server((host, shop.port)))
        except OSError as exc:
            for sock in sockets:
                sock.close()
            raise OrderSyncError(
                f"sandbox: cannot listen on {host}:{shop.port}: {exc.strerror or exc}"
            ) from None
    servers = [uvicorn.Server(_config(s.app, host, port=s.port)) for s in shops]

    async def run() -> None:
        tasks = [
            asyncio.create_task(server.serve(sockets=[sock]))
            for server, sock in zip(servers, sockets, strict=True)
        ]
        while not all(server.started for server in servers):
            if any(task.done() for task in tasks):
                break
            await asyncio.sleep(0.02)
        else:
            if ready is not None:
                for shop in shops:
                    ready(shop.banner.format(url=f"http://{host}:{shop.port}"))
                ready("ready")
        await asyncio.gather(*tasks)

    asyncio.run(run())
