"""WebCommander shops that read the document differently from the sandbox's old choices: a host that caps
``max`` at 50 while asked 250, a listing newest first, orders arriving during the scan, injected 429s,
502s and cut connections, 1 % malformed records and a shop time zone with DST. A backfill must leave
every valid order exactly once and every malformed one in quarantine, or end ``incomplete`` and say so;
it never reports ``ok`` with orders missing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ordersync.config import parse_settings
from ordersync.mirror.store import Mirror
from ordersync.sandbox.faults import FaultConfig, FaultInjector
from ordersync.sandbox.server import SandboxServer
from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID, Churn, create_app
from ordersync.sandbox.webcommander.store import WebCommanderStore
from ordersync.state import records
from ordersync.state.store import StateStore
from ordersync.sync.backfill import backfill_shop
from ordersync.sync.pipeline import RunStats


class StrictShop:
    def __init__(self, tmp_path: Path, *, order: str, churn: Churn | None, faults: FaultConfig | None):
        self.store = WebCommanderStore(orders=3000, seed=11, listing_order=order)
        malformed = []
        for n, order_id in enumerate(self.store.listed_ids()[::100]):  # 1 % of the orders
            raw = self.store.get(order_id)
            if n % 2:
                raw["items"][0]["price"] = "n/a"
            else:
                raw["customerName"] = "x" * 200_000
            self.store.add_raw(raw)
            malformed.append(str(order_id))
        self.malformed = set(malformed)
        self.store.add_oddities(dst_fold=3, seed=5)
        self.churn = churn
        self.app: FaultInjector = create_app(self.store, faults=faults, churn=churn)
        self.tmp_path = tmp_path
        self.server = SandboxServer(self.app)

    def __enter__(self) -> StrictShop:
        self.server.__enter__()
        self.settings = parse_settings(
            {
                "mirror": {"path": str(self.tmp_path / "mirror.duckdb"), "batch_orders": 400},
                "state": {"url": f"sqlite:///{self.tmp_path / 'state.db'}"},
                "http": {"max_retries": 8, "backoff_base": 0.01, "backoff_max": 0.05, "timeout": 2},
                "workers": 2,
                "shops": [
                    {
                        "name": "wc",
                        "platform": "webcommander",
                        "base_url": self.server.base_url,
                        "uuid": DEFAULT_UUID,
                        "access_token": DEFAULT_TOKEN,
                        "timezone": "Australia/Melbourne",
                        "currency": "AUD",
                        "page_size": 250,
                        "concurrency": 4,
                    }
                ],
            }
        )
        self.mirror = Mirror(self.settings.mirror.path)
        self.state = StateStore(self.settings.state.url.get_secret_value())
        self.state.upgrade()
        return self

    def __exit__(self, *exc: object) -> None:
        self.state.dispose()
        self.server.__exit__(*exc)

    def backfill(self) -> RunStats:
        shop = self.settings.shops[0]
        return asyncio.run(backfill_shop(shop, self.settings, self.mirror, store=self.state))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.mirror.path), read_only=True) as con:
            return con.execute(sql).fetchall()


@pytest.fixture(params=["newest", "oldest"])
def strict(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StrictShop]:
    faults = FaultConfig(rate_429=0.05, retry_after=0, rate_5xx=0.05, rate_html=0.03, seed=4)
    with StrictShop(tmp_path, order=request.param, churn=Churn(every=4, count=25), faults=faults) as shop:
        yield shop


def test_a_capped_newest_first_busy_flaky_shop_is_mirrored_exactly_or_the_run_says_so(
    strict: StrictShop,
) -> None:
    stats = strict.backfill()
    listed = {str(i) for i in strict.store.listed_ids()}
    valid = listed - strict.malformed
    mirrored = [r[0] for r in strict.query("SELECT order_id FROM orders")]
    quarantined = {r[0] for r in strict.query("SELECT record_id FROM quarantine")}
    (run,) = records.last_runs(strict.state, "wc")
    assert strict.app.faults_served > 0 and strict.churn is not None and strict.churn.added
    if stats.incomplete is None:
        # Complete: every valid order once, none extra, every malformed one in quarantine.
        assert run.status == "ok" and stats.details["scan"]["complete"]
        assert len(mirrored) == len(set(mirrored)) and set(mirrored) == valid
        assert quarantined == strict.malformed
    else:
        assert run.status == "incomplete" and stats.details["scan"]["unverified"] > 0
        assert not strict.query("SELECT count(*) FROM orders WHERE missing_since IS NOT NULL")[0][0]
    # The host's cap was learned and kept for the next run, and the order read from the ids.
    listing = records.get_cursor(strict.state, "wc", "listing")
    assert listing == {"cap": 50, "order": strict.store.listing_order}
    # Orders stamped in the autumn hour that happens twice keep updated_at after created_at.
    assert not strict.query("SELECT count(*) FROM orders WHERE updated_at < created_at")[0][0]
    reasons = strict.query("SELECT DISTINCT path FROM quarantine ORDER BY 1")
    assert reasons == [("(canonical) customer_name",), ("items[0].price",)]


def test_the_quiet_strict_shop_is_complete_in_one_pass_and_asks_the_cap_directly_next_time(
    tmp_path: Path,
) -> None:
    with StrictShop(tmp_path, order="newest", churn=None, faults=None) as shop:
        first = shop.backfill()
        assert first.incomplete is None and len(first.details["scan"]["passes"]) == 1
        requests = shop.app.total_requests("/orders")
        assert requests == -(-shop.store.count // 50)  # one request per 50 orders, none wasted
        second = shop.backfill()
        assert second.loaded == 0 and second.details["scan"]["complete"]
        assert shop.app.total_requests("/orders") - requests == requests


def test_a_scan_that_never_holds_still_ends_incomplete_with_exit_1_and_marks_nothing_gone(
    tmp_path: Path,
) -> None:
    with StrictShop(tmp_path, order="newest", churn=None, faults=None) as shop:
        shop.backfill()
        shop.settings = shop.settings.model_copy(
            update={"shops": [shop.settings.shops[0].model_copy(update={"scan_passes": 2})]}
        )
        # From now on an order arrives with every page and another leaves: no pass can prove anything.
        original = shop.store.list_page

        def churning(offset: int, max_: int) -> tuple[int, list[bytes]]:
            shop.store.add_generated(seed=offset)
            ids = shop.store.listed_ids()
            shop.store.delete(ids[len(ids) // 2])
            return original(offset, max_)

        shop.store.list_page = churning  # type: ignore[method-assign]
        stats = shop.backfill()
        assert stats.incomplete is not None and "unverified" in stats.incomplete
        (last, *_) = records.last_runs(shop.state, "wc")
        assert last.status == "incomplete" and "could not verify" in (last.error or "")
        assert not shop.query("SELECT count(*) FROM orders WHERE missing_since IS NOT NULL")[0][0]
        assert records.get_cursor(shop.state, "wc", "scan") is not None  # from the first, complete run
