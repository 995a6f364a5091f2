"""A sandbox WebCommander shop served on loopback for each test that asks for one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ordersync.config import Settings, parse_settings
from ordersync.sandbox.faults import FaultConfig, FaultInjector
from ordersync.sandbox.server import SandboxServer
from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID, create_app
from ordersync.sandbox.webcommander.store import WebCommanderStore


@dataclass
class Shop:
    store: WebCommanderStore
    app: FaultInjector
    base_url: str

    def settings(
        self,
        tmp_path: Path,
        *,
        token: str = DEFAULT_TOKEN,
        page_size: int = 250,
        concurrency: int = 4,
        retries: int = 4,
        timeout: float = 5,
    ) -> Settings:
        return parse_settings(
            {
                "mirror": {"path": str(tmp_path / "mirror.duckdb"), "batch_orders": 700},
                "http": {
                    "max_retries": retries,
                    "backoff_base": 0.01,
                    "backoff_max": 0.05,
                    "timeout": timeout,
                },
                "shops": [
                    {
                        "name": "wc",
                        "platform": "webcommander",
                        "base_url": self.base_url,
                        "uuid": DEFAULT_UUID,
                        "access_token": token,
                        "timezone": "Australia/Melbourne",
                        "currency": "AUD",
                        "page_size": page_size,
                        "concurrency": concurrency,
                    }
                ],
            }
        )


def _serve(orders: int, faults: FaultConfig | None = None) -> Iterator[Shop]:
    store = WebCommanderStore(orders=orders, seed=7)
    app = create_app(store, faults=faults)
    with SandboxServer(app) as server:
        yield Shop(store, app, server.base_url)


@pytest.fixture
def shop() -> Iterator[Shop]:
    yield from _serve(3000)


@pytest.fixture
def small_shop() -> Iterator[Shop]:
    yield from _serve(600)


@pytest.fixture
def flaky_shop() -> Iterator[Shop]:
    yield from _serve(1500, FaultConfig(rate_429=0.15, retry_after=0, rate_5xx=0.1, rate_html=0.05, seed=3))
