"""A shop that goes away in the middle of a backfill: nginx's 502 pages while PHP is down, then the
port refusing connections while the server restarts. The backfill waits it out by itself and the
mirror ends complete; past the retry budget it resumes from its checkpoint by itself.

Time is scaled down (an outage of seconds against a budget of seconds): the same rule with the
default budget is tested in virtual time in ``tests/unit/test_http_policy.py``, and measured against
a real two-minute outage by ``bench/outage_drill.py``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ordersync.config import parse_settings
from ordersync.errors import BadResponseError, ServerError
from ordersync.mirror.store import Mirror
from ordersync.sandbox.faults import FaultInjector
from ordersync.sandbox.server import SandboxServer
from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID
from ordersync.sandbox.webcommander.app import create_app as create_wc_app
from ordersync.sandbox.webcommander.store import WebCommanderStore
from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET
from ordersync.sandbox.woocommerce.app import create_app as create_woo_app
from ordersync.sandbox.woocommerce.store import WooCommerceStore
from ordersync.state import records
from ordersync.state.store import StateStore
from ordersync.sync.backfill import backfill_shop
from ordersync.sync.pipeline import RunStats


def _woo() -> tuple[FaultInjector, list[str], dict[str, Any]]:
    store = WooCommerceStore(orders=900, seed=5)
    shop = {
        "platform": "woocommerce",
        "consumer_key": DEFAULT_CONSUMER_KEY,
        "consumer_secret": DEFAULT_CONSUMER_SECRET,
        "page_size": 50,
    }
    return create_woo_app(store), [str(i) for i in store.order_ids()], shop


def _webcommander() -> tuple[FaultInjector, list[str], dict[str, Any]]:
    store = WebCommanderStore(orders=900, seed=5)  # capped at 50 a page, newest first
    shop = {"platform": "webcommander", "uuid": DEFAULT_UUID, "access_token": DEFAULT_TOKEN, "page_size": 50}
    return create_wc_app(store), [str(i) for i in store.listed_ids()], shop


SHOPS: dict[str, Callable[[], tuple[FaultInjector, list[str], dict[str, Any]]]] = {
    "woocommerce": _woo,
    "webcommander": _webcommander,
}


class Outage:
    """Serves a shop and takes it down once it has answered ``after`` requests."""

    def __init__(self, platform: str, tmp_path: Path, http: dict[str, Any]):
        self.app, self.ids, shop = SHOPS[platform]()
        self.server = SandboxServer(self.app)
        self.settings = parse_settings(
            {
                "mirror": {"path": str(tmp_path / "mirror.duckdb"), "batch_orders": 100},
                "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
                "http": {"backoff_base": 0.05, "timeout": 5, **http},
                "workers": 0,
                "shops": [{"name": "shop", "base_url": self.server.base_url, "concurrency": 3, **shop}],
            }
        )
        self.state = StateStore(self.settings.state.url.get_secret_value())
        self.state.upgrade()

    def checkpointed(self) -> bool:
        return bool((records.get_cursor(self.state, "shop", "backfill") or {}).get("position"))

    def take_down(
        self, *, after: int = 0, checkpointed: bool = False, bad_gateway: float, refused: float
    ) -> threading.Thread:
        """Once ``after`` requests were answered (or the backfill checkpointed a batch): 502 pages for
        ``bad_gateway`` s, then connection refused for ``refused`` s, then the shop is back."""

        def go() -> None:
            while self.app.total_requests() < after or (checkpointed and not self.checkpointed()):
                time.sleep(0.005)
            self.app.outage(bad_gateway)
            time.sleep(bad_gateway)
            if refused:
                self.server.go_down(refused)

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        return thread

    def backfill(self) -> RunStats:
        mirror = Mirror(self.settings.mirror.path)
        shop = self.settings.shops[0]
        return asyncio.run(backfill_shop(shop, self.settings, mirror, store=self.state))

    def mirrored(self) -> list[str]:
        with duckdb.connect(str(self.settings.mirror.path), read_only=True) as con:
            return [r[0] for r in con.execute("SELECT order_id FROM orders ORDER BY order_id").fetchall()]


@pytest.fixture
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Outage]]:
    made: list[Outage] = []

    def make(**http: Any) -> Outage:
        shop = Outage(request.param, tmp_path, http)
        shop.server.__enter__()
        made.append(shop)
        return shop

    yield make
    for shop in made:
        shop.server.__exit__()
        shop.state.dispose()


@pytest.mark.parametrize("outage", list(SHOPS), indirect=True)
def test_a_backfill_waits_out_bad_gateways_and_refused_connections(outage: Callable[..., Outage]) -> None:
    shop = outage(retry_for=20, backoff_max=0.25)
    down = shop.take_down(after=6, bad_gateway=1.0, refused=1.5)
    stats = shop.backfill()
    down.join(timeout=10)
    assert stats.incomplete is None
    assert stats.retries >= 4  # it did see the outage, on both kinds of failure
    assert "outage_resumes" not in stats.details  # each request rode it out within its budget
    assert sorted(shop.mirrored()) == sorted(shop.ids)
    (run,) = records.last_runs(shop.state, "shop")
    assert run.status == "ok"


@pytest.mark.parametrize("outage", list(SHOPS), indirect=True)
def test_past_the_retry_budget_the_backfill_resumes_from_its_checkpoint(
    outage: Callable[..., Outage],
) -> None:
    shop = outage(retry_for=0.6, backoff_max=1.0, resumes=3)
    down = shop.take_down(checkpointed=True, bad_gateway=1.5, refused=0)
    stats = shop.backfill()
    down.join(timeout=10)
    assert stats.details["outage_resumes"] >= 1
    assert stats.details.get("resumed_from")  # started again from the checkpoint, not from zero
    assert stats.incomplete is None
    assert sorted(shop.mirrored()) == sorted(shop.ids)
    (run,) = records.last_runs(shop.state, "shop")
    assert run.status == "ok"


@pytest.mark.parametrize("outage", ["woocommerce"], indirect=True)
def test_an_outage_past_every_resume_fails_the_run_saying_how_long_it_tried(
    outage: Callable[..., Outage],
) -> None:
    shop = outage(retry_for=0.3, backoff_max=0.1, resumes=1)
    shop.take_down(checkpointed=True, bad_gateway=30, refused=0)
    with pytest.raises(
        (ServerError, BadResponseError), match=r"HTTP 502 .*still failing after \d+ tries over 0\.\d s"
    ):
        shop.backfill()
    (run,) = records.last_runs(shop.state, "shop")
    assert run.status == "failed"
    assert 0 < len(shop.mirrored()) < len(shop.ids)  # what was fetched before stays committed


@pytest.mark.parametrize("outage", ["woocommerce"], indirect=True)
def test_a_restart_that_loses_the_shop_before_its_first_batch_fails_and_never_takes_the_old_checkpoint(
    outage: Callable[..., Outage],
) -> None:
    shop = outage(retry_for=0.3, backoff_max=0.1, resumes=2)
    shop.take_down(checkpointed=True, bad_gateway=30, refused=0).join(timeout=0.01)
    with pytest.raises((ServerError, BadResponseError)):
        shop.backfill()  # leaves an unfinished checkpoint part-way
    assert not records.get_cursor(shop.state, "shop", "backfill")["done"]  # type: ignore[index]
    shop.settings.mirror.path.unlink()  # the mirror is rebuilt: a restart is asked for
    # The shop fails again before the restart commits anything, and is back 0.5 s later: resuming
    # then would take the old checkpoint, skip the orders before it and call the run complete.
    shop.app.outage(0.5)
    mirror = Mirror(shop.settings.mirror.path)
    with pytest.raises((ServerError, BadResponseError)):
        asyncio.run(
            backfill_shop(shop.settings.shops[0], shop.settings, mirror, store=shop.state, restart=True)
        )
    time.sleep(0.6)
    stats = asyncio.run(
        backfill_shop(shop.settings.shops[0], shop.settings, mirror, store=shop.state, restart=True)
    )
    assert "resumed_from" not in stats.details and stats.incomplete is None
    assert sorted(shop.mirrored()) == sorted(shop.ids)
