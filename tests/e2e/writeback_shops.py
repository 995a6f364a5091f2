"""Two sandbox shops on loopback (a WooCommerce and a WebCommander) linked by routes, for the
write-back end-to-end tests: real servers, real HTTP, the state store and the mirror on disk."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ordersync.config import Settings, parse_settings
from ordersync.sandbox.faults import FaultInjector
from ordersync.sandbox.server import SandboxServer
from ordersync.sandbox.webcommander.admin_api import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID
from ordersync.sandbox.webcommander.app import create_app as create_wc_app
from ordersync.sandbox.webcommander.store import WebCommanderStore
from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET
from ordersync.sandbox.woocommerce.app import create_app as create_woo_app
from ordersync.sandbox.woocommerce.store import WooCommerceStore
from ordersync.state.store import StateStore
from ordersync.sync.incremental import sync_shop
from ordersync.writeback.service import WriteBackStats, write_back

# WooCommerce SKUs of the sandbox catalogue -> WebCommander product ids.
SKU_MAP = {"SKU-001": "495", "SKU-002": "496", "SKU-003": "497", "SKU-004": "498", "TSHIRT-S": "510"}
COUNTRY_IDS = {"DE": 81, "AT": 14, "FR": 74, "IT": 105}

DEFAULT_ROUTES: list[dict[str, Any]] = [
    {
        "from": "woo",
        "to": "wc",
        "changes": ["orders", "status", "payments", "refunds", "comments"],
        "products": SKU_MAP,
    },
    {"from": "wc", "to": "woo", "changes": ["status", "comments"]},
]


@dataclass
class Shops:
    tmp_path: Path
    wc: WebCommanderStore
    wc_app: FaultInjector
    wc_url: str
    woo: WooCommerceStore
    woo_app: FaultInjector
    woo_url: str
    routes: list[dict[str, Any]] = field(default_factory=lambda: list(DEFAULT_ROUTES))
    conflicts: dict[str, str] = field(default_factory=dict)
    outbox: dict[str, Any] = field(default_factory=lambda: {"max_attempts": 3, "backoff_base": 0})
    wc_options: dict[str, Any] = field(default_factory=dict)
    """More of the WebCommander shop's config (``idempotency_keys``, say)."""

    def config(self) -> dict[str, Any]:
        return {
            "workers": 0,
            "mirror": {"path": str(self.tmp_path / "mirror.duckdb")},
            "state": {"url": f"sqlite:///{self.tmp_path / 'state.db'}", "auto_upgrade": True},
            "http": {"max_retries": 2, "backoff_base": 0.01, "backoff_max": 0.05, "timeout": 10},
            "sync": {"routes": self.routes, "conflicts": self.conflicts, "outbox": self.outbox},
            "shops": [
                {
                    "name": "woo",
                    "platform": "woocommerce",
                    "base_url": self.woo_url,
                    "consumer_key": DEFAULT_CONSUMER_KEY,
                    "consumer_secret": DEFAULT_CONSUMER_SECRET,
                    "timezone": "Europe/Berlin",
                    "currency": "EUR",
                },
                {
                    "name": "wc",
                    "platform": "webcommander",
                    "base_url": self.wc_url,
                    "uuid": DEFAULT_UUID,
                    "access_token": DEFAULT_TOKEN,
                    "timezone": "Europe/Berlin",
                    "currency": "EUR",
                    "admin_api": {
                        "base_url": self.wc_url,
                        "client_id": DEFAULT_CLIENT_ID,
                        "client_secret": DEFAULT_CLIENT_SECRET,
                    },
                    "country_ids": COUNTRY_IDS,
                }
                | self.wc_options,
            ],
        }

    def settings(self) -> Settings:
        return parse_settings(self.config())

    def write_config(self) -> Path:
        path = self.tmp_path / "sync.yaml"
        path.write_text(yaml.safe_dump(self.config()))
        return path

    def store(self) -> StateStore:
        return self.settings().state.open_ready()

    def sync(self, state: StateStore, *names: str) -> None:
        """One incremental run of each shop (both by default), without write-back."""
        settings = self.settings()
        mirror = settings.mirror.open()
        for name in names or ("woo", "wc"):
            asyncio.run(sync_shop(settings.shop(name), settings, mirror, state))

    def cycle(self, state: StateStore, *names: str) -> WriteBackStats:
        """What `ordersync sync --once` does: sync the shops, route their changes, drain the outbox."""
        self.sync(state, *names)
        return self.write_back(state, *names)

    def write_back(self, state: StateStore, *names: str) -> WriteBackStats:
        settings = self.settings()
        shops = [settings.shop(n) for n in names or ("woo", "wc")]
        return asyncio.run(write_back(settings, state, settings.mirror.open(), shops))

    # -- the shops' own state, as a person would see it in their admin -------------------------------
    def new_woo_order(self, skus: list[str], *, paid: bool = True, note: str | None = None) -> int:
        return new_woo_order(self.woo, skus, paid=paid, note=note)

    def wc_refunds(self, order_id: str) -> list[dict[str, Any]]:
        return [p for p in self.wc.get(order_id)["payments"] if p.get("refundId") is not None]


def new_woo_order(
    woo: WooCommerceStore, skus: list[str], *, paid: bool = True, note: str | None = None
) -> int:
    """An order placed in the WooCommerce sandbox as a customer would, by SKU."""
    items = []
    for sku in skus:
        product = next(p for p in _catalog() if p.sku == sku)
        ids = (
            {"product_id": product.parent_id, "variation_id": product.id}
            if product.parent_id
            else {"product_id": product.id}
        )
        items.append({**ids, "quantity": 2})
    body = {
        "billing": {
            "first_name": "Erika",
            "last_name": "Muster",
            "address_1": "Hauptstr. 1",
            "city": "Berlin",
            "postcode": "10115",
            "country": "DE",
            "email": "erika@example.com",
        },
        "payment_method": "stripe",
        "line_items": items,
        "set_paid": paid,
    }
    order = woo.create_order(body)
    if note:
        woo.add_note(order.id, note, customer_note=True, author="Kim")
    return order.id


def _catalog() -> Any:
    from ordersync.sandbox.woocommerce.catalog import PRODUCTS

    return PRODUCTS


def serve_shops(tmp_path: Path, *, orders: int = 12, wc_wrap: Any = None) -> Iterator[Shops]:
    wc = WebCommanderStore(orders=orders, seed=3, timezone="Europe/Berlin")
    wc_app = create_wc_app(wc)
    woo = WooCommerceStore(orders=orders, seed=3, timezone="Europe/Berlin", currency="EUR")
    woo_app = create_woo_app(woo)
    with (
        SandboxServer(wc_wrap(wc_app) if wc_wrap else wc_app) as wc_server,
        SandboxServer(woo_app) as woo_server,
    ):
        yield Shops(tmp_path, wc, wc_app, wc_server.base_url, woo, woo_app, woo_server.base_url)
