"""Incremental sync against sandbox shops served on loopback: only what changed is read and written,
orders changed in the cursor's second, during a run or under a skewed shop clock are caught, trashed
orders become deleted, new notes of open orders arrive, and WebCommander orders that leave the listing
are marked. Backfills cut short resume from their checkpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ordersync.config import Settings, parse_settings
from ordersync.errors import ServerError
from ordersync.mirror.store import Mirror
from ordersync.sandbox.faults import Fault, FaultInjector
from ordersync.sandbox.server import SandboxServer
from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID
from ordersync.sandbox.webcommander.app import create_app as webcommander_app
from ordersync.sandbox.webcommander.store import WebCommanderStore
from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET
from ordersync.sandbox.woocommerce.app import create_app as woocommerce_app
from ordersync.sandbox.woocommerce.store import WooCommerceStore
from ordersync.state import records
from ordersync.state.store import StateStore
from ordersync.sync.backfill import backfill_shop
from ordersync.sync.incremental import sync_shop
from ordersync.sync.pipeline import RunStats


class Clock:
    """The shop's clock: real time plus a skew the test sets (a shop whose clock disagrees with ours),
    or stopped at ``frozen`` (everything the shop does happens in one second)."""

    def __init__(self, skew: float = 0.0):
        self.skew = timedelta(seconds=skew)
        self.frozen: datetime | None = None

    def __call__(self) -> datetime:
        return self.frozen or datetime.now(UTC) + self.skew


class Harness:
    def __init__(self, tmp_path: Path, base_url: str, shop: dict[str, Any]):
        self.settings: Settings = parse_settings(
            {
                "mirror": {"path": str(tmp_path / "mirror.duckdb"), "batch_orders": 300},
                "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
                # resumes 0: these tests cut a backfill short on purpose and resume it by hand
                # (a backfill resuming by itself after an outage is tests/e2e/test_outage.py's)
                "http": {
                    "max_retries": 1,
                    "backoff_base": 0.01,
                    "backoff_max": 0.02,
                    "timeout": 5,
                    "resumes": 0,
                },
                "workers": 0,
                "shops": [{"base_url": base_url, **shop}],
            }
        )
        self.shop = self.settings.shops[0]
        self.mirror = Mirror(self.settings.mirror.path)
        self.store = StateStore(self.settings.state.url.get_secret_value())
        self.store.upgrade()

    def backfill(self, **kwargs: Any) -> RunStats:
        return asyncio.run(backfill_shop(self.shop, self.settings, self.mirror, store=self.store, **kwargs))

    def sync(self) -> RunStats:
        return asyncio.run(sync_shop(self.shop, self.settings, self.mirror, self.store))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.mirror.path), read_only=True) as con:
            return con.execute(sql).fetchall()


# -- WooCommerce --------------------------------------------------------------------------------------
def _woo_shop(**extra: Any) -> dict[str, Any]:
    return {
        "name": "woo",
        "platform": "woocommerce",
        "consumer_key": DEFAULT_CONSUMER_KEY,
        "consumer_secret": DEFAULT_CONSUMER_SECRET,
        "timezone": "Europe/Berlin",
        "currency": "EUR",
        "concurrency": 2,
        "sync_overlap": 10,
        **extra,
    }


class Woo:
    def __init__(
        self,
        shop: WooCommerceStore,
        app: FaultInjector,
        harness: Harness,
        wrapper: Any = None,
        clock: Any = None,
    ):
        self.shop, self.app, self.h, self.wrapper, self.clock = shop, app, harness, wrapper, clock

    def mirrored(self) -> dict[str, tuple[str, str]]:
        return {
            oid: (status_raw, str(updated))
            for oid, status_raw, updated in self.h.query(
                "SELECT order_id, status_raw, strftime(updated_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S') "
                "FROM orders"
            )
        }

    def in_shop(self, trashed: set[int]) -> dict[str, tuple[str, str]]:
        """Every order as the shop has it now: those ``status=any`` lists (the backfill's view) and
        those trashed since the backfill (which the sync must see become deleted)."""
        with self.shop.lock:
            return {
                str(o.id): (o.status, o.modified.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"))
                for o in self.shop.orders.values()
                if o.status != "trash" or o.id in trashed
            }

    def assert_mirror_matches_shop(self, trashed: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        mirrored, shop = self.mirrored(), self.in_shop(trashed)
        assert mirrored.keys() == shop.keys()
        wrong = {k: (mirrored[k], shop[k]) for k in shop if mirrored[k] != shop[k]}
        assert not wrong, f"{len(wrong)} orders differ from the shop: {dict(list(wrong.items())[:5])}"


def _new_order(shop: WooCommerceStore, at: datetime | None = None) -> int:
    return shop.create_order(
        {
            "billing": {
                "first_name": "New",
                "last_name": "Buyer",
                "country": "DE",
                "email": "n@example.test",
            },
            "line_items": [{"product_id": 11, "quantity": 1}],
            "set_paid": True,
        },
        at=at,
    ).id


@pytest.fixture
def woo_factory(tmp_path: Path) -> Iterator[Callable[..., Woo]]:
    servers: list[SandboxServer] = []

    def make(orders: int = 300, skew: float = 0.0, wrap: Any = None, **shop: Any) -> Woo:
        clock = Clock(skew)
        store = WooCommerceStore(orders=orders, seed=5, clock=clock)
        app = woocommerce_app(store)
        wrapper = wrap(app, store) if wrap else None
        server = SandboxServer(wrapper or app)
        server.__enter__()
        servers.append(server)
        return Woo(store, app, Harness(tmp_path, server.base_url, _woo_shop(**shop)), wrapper, clock)

    yield make
    for server in servers:
        server.__exit__(None, None, None)


def _open_order(shop: WooCommerceStore, exclude: set[int] = frozenset()) -> int:  # type: ignore[assignment]
    return next(
        o.id
        for o in shop.orders.values()
        if o.status in ("processing", "on-hold", "pending") and o.id not in exclude
    )


def test_woocommerce_sync_reads_only_what_changed_and_catches_every_kind_of_change(
    woo_factory: Callable[..., Woo],
) -> None:
    woo = woo_factory()
    first = woo.h.backfill()
    assert first.fetched == first.loaded == len(woo.shop.order_ids())
    quiet = woo.h.sync()
    assert quiet.loaded == 0 and quiet.fetched == 0
    # One list request per pass (changed, trashed); the rest are notes of open orders.
    assert quiet.details["requests"] == 2 + quiet.details["notes_checked"]
    assert quiet.details["notes_checked"] > 0

    ids = woo.shop.order_ids()
    woo.shop.update_order(
        ids[0], {"status": "completed" if woo.shop.orders[ids[0]].status != "completed" else "on-hold"}
    )
    new_id = _new_order(woo.shop)
    woo.shop.trash(ids[1])
    noted = _open_order(woo.shop, {ids[0], ids[1]})
    woo.shop.add_note(noted, "Customer called about delivery", customer_note=True)
    assert woo.shop.orders[noted].modified < datetime.now(UTC) - timedelta(days=1)  # the note left it alone

    changed = woo.h.sync()
    woo.assert_mirror_matches_shop(trashed={ids[1]})
    assert woo.h.query(f"SELECT status FROM orders WHERE order_id = '{ids[1]}'") == [("deleted",)]
    note = "Customer called about delivery"
    comments = woo.h.query(f"SELECT text FROM comments WHERE order_id = '{noted}'")
    assert comments.count((note,)) == 1
    assert new_id in woo.shop.order_ids()
    assert changed.details["notes_changed"] == 1
    assert changed.loaded == 4  # the status change, the new order, the trashed one, the new note

    again = woo.h.sync()
    woo.assert_mirror_matches_shop(trashed={ids[1]})
    assert again.loaded == 0 and again.details["listed"] >= 3  # the overlap is listed again, not rewritten


@pytest.mark.parametrize("api_version", ["v3", "v2"])
def test_woocommerce_orders_modified_in_the_cursors_second_are_caught(
    woo_factory: Callable[..., Woo], api_version: str
) -> None:
    woo = woo_factory(notes="none", api_version=api_version)
    woo.h.backfill()
    ids = woo.shop.order_ids()
    at = woo.shop.now()
    woo.shop.update_order(ids[0], {"customer_note": "first"}, at=at)
    woo.h.sync()
    cursor = records.get_cursor(woo.h.store, "woo", "orders")
    assert cursor is not None and at <= datetime.fromisoformat(cursor["modified"]) < at + timedelta(seconds=1)
    # Same second as the cursor, after the run: a half-open `modified_after` would miss these.
    woo.shop.update_order(ids[1], {"customer_note": "second"}, at=at)
    _new_order(woo.shop, at=at)
    woo.shop.trash(ids[2], at=at)
    stats = woo.h.sync()
    assert stats.loaded == 3
    woo.assert_mirror_matches_shop(trashed={ids[2]})


def test_a_woocommerce_order_changed_twice_in_the_second_the_shop_answered_is_read_again(
    woo_factory: Callable[..., Woo],
) -> None:
    """The first change is listed; the second, after the listing but in the same second, has the same
    stamp. The edge must not have taken that stamp as settled, or the second change is never read."""
    woo = woo_factory(notes="none")
    woo.h.backfill()
    woo.clock.frozen = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
    oid = woo.shop.order_ids()[3]
    woo.shop.update_order(oid, {"customer_note": "first change"})
    woo.h.sync()
    woo.shop.update_order(oid, {"customer_note": "second change, same second"})
    woo.h.sync()
    assert woo.h.query(f"SELECT customer_note FROM orders WHERE order_id = '{oid}'") == [
        ("second change, same second",)
    ]
    woo.clock.frozen = None
    woo.h.sync()  # the shop's clock has moved on: listed once more, now its stamp is settled...
    settled = woo.h.sync()  # ...and skipped before any detail request
    assert settled.details["edge_skipped"] >= 1 and settled.loaded == 0 and settled.fetched == 0


@pytest.mark.parametrize("skew", [-7.0, 7.0], ids=["shop-clock-behind", "shop-clock-ahead"])
def test_woocommerce_changes_are_caught_when_the_shop_clock_disagrees(
    woo_factory: Callable[..., Woo], skew: float
) -> None:
    woo = woo_factory(skew=skew, notes="none")
    woo.h.backfill()
    for round_ in range(3):
        ids = woo.shop.order_ids()
        woo.shop.update_order(ids[round_], {"customer_note": f"round {round_}"})
        _new_order(woo.shop)
        woo.h.sync()
        cursor = records.get_cursor(woo.h.store, "woo", "orders")
        assert cursor is not None
        assert datetime.fromisoformat(cursor["modified"]) <= datetime.now(UTC)  # capped at the run's start
        woo.assert_mirror_matches_shop()


class ChangesDuringTheRun:
    """Creates and modifies orders while a sync lists the changed orders, as a busy shop does."""

    def __init__(self, app: Any, store: WooCommerceStore):
        self.app, self.store, self.armed, self.done = app, store, False, False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        query = scope.get("query_string", b"") if scope["type"] == "http" else b""
        if self.armed and not self.done and b"modified_after" in query:
            self.done = True
            ids = self.store.order_ids()
            at = self.store.now()
            for oid in ids[5:8]:
                self.store.update_order(oid, {"customer_note": "during the run"}, at=at)
            for _ in range(3):
                _new_order(self.store, at=at)
        await self.app(scope, receive, send)


def test_woocommerce_orders_changed_during_a_run_are_caught_by_the_next(
    woo_factory: Callable[..., Woo],
) -> None:
    woo = woo_factory(wrap=ChangesDuringTheRun, notes="none")
    woo.h.backfill()
    changer = woo.wrapper
    changer.armed = True
    woo.h.sync()
    assert changer.done
    woo.h.sync()
    woo.assert_mirror_matches_shop()


# -- WebCommander -------------------------------------------------------------------------------------
class WebCommander:
    def __init__(self, shop: WebCommanderStore, app: FaultInjector, harness: Harness):
        self.shop, self.app, self.h = shop, app, harness

    def assert_mirror_matches_shop(self, *, missing: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        rows = self.h.query("SELECT order_id, status_raw, payment_status_raw, missing_since FROM orders")
        present = {oid: (status, payment) for oid, status, payment, gone in rows if gone is None}
        gone = {oid for oid, *_, since in rows if since is not None}
        shop = {str(o["id"]): (o["orderStatus"], o["paymentStatus"]) for o in self.shop.orders()}
        assert present == shop
        assert gone == missing


@pytest.fixture
def webcommander_factory(tmp_path: Path) -> Iterator[Callable[..., WebCommander]]:
    servers: list[SandboxServer] = []

    def make(orders: int = 1200, **shop: Any) -> WebCommander:
        store = WebCommanderStore(orders=orders, seed=3)
        app = webcommander_app(store)
        server = SandboxServer(app)
        server.__enter__()
        servers.append(server)
        fields = {
            "name": "wc",
            "platform": "webcommander",
            "uuid": DEFAULT_UUID,
            "access_token": DEFAULT_TOKEN,
            "timezone": "Australia/Melbourne",
            "currency": "AUD",
            "page_size": 100,
            **shop,
        }
        return WebCommander(store, app, Harness(tmp_path, server.base_url, fields))

    yield make
    for server in servers:
        server.__exit__(None, None, None)


def test_webcommander_scan_maps_only_changed_orders_and_marks_the_ones_that_left(
    webcommander_factory: Callable[..., WebCommander],
) -> None:
    wc = webcommander_factory()
    wc.h.backfill()
    quiet = wc.h.sync()
    assert (quiet.fetched, quiet.mapped, quiet.loaded) == (1200, 0, 0)

    ids = [o["id"] for o in wc.shop.orders()]
    wc.shop.set_status(
        ids[3], "cancelled" if wc.shop.get(ids[3])["orderStatus"] != "cancelled" else "pending"
    )
    wc.shop.set_payment_status(ids[500], "cancelled")
    wc.shop.add_comment(ids[900], "Left at the door", visible=True)
    removed = [wc.shop.get(ids[10]), wc.shop.get(ids[1100])]
    for order in removed:
        wc.shop.delete(order["id"])
    changed = wc.h.sync()
    assert (changed.mapped, changed.loaded) == (3, 3)
    assert changed.details["disappeared"] == 2
    wc.assert_mirror_matches_shop(missing={str(o["id"]) for o in removed})
    events = wc.h.query(f"SELECT kind, status_before, status FROM order_events WHERE order_id = '{ids[3]}'")
    assert [e[0] for e in events] == ["new", "changed"]

    wc.shop.add_raw(removed[0])  # back in the listing, unchanged
    back = wc.h.sync()
    assert back.details["reappeared"] == 1 and back.mapped == 0
    wc.assert_mirror_matches_shop(missing={str(removed[1]["id"])})


def test_a_webcommander_backfill_cut_short_resumes_from_its_checkpoint(
    webcommander_factory: Callable[..., WebCommander],
) -> None:
    wc = webcommander_factory(orders=2500, concurrency=2)
    wc.app.script("offset=1700", [Fault.server_error(500)] * 2)
    with pytest.raises(ServerError):
        wc.h.backfill()
    checkpoint = records.get_cursor(wc.h.store, "wc", "backfill")
    assert checkpoint is not None and not checkpoint["done"]
    position = checkpoint["position"]
    assert position["order"] == "newest" and 0 < position["offset"] <= 1700
    (failed,) = records.last_runs(wc.h.store, "wc")
    assert failed.status == "failed" and "HTTP 500" in (failed.error or "")
    (before,) = wc.h.query("SELECT count(*) FROM orders")[0]
    resumed = wc.h.backfill()
    # One page back (the host's 50, not the 100 asked for), then a whole pass that proves it.
    assert resumed.details["resumed_from"] == position["offset"] - 50
    scan = resumed.details["scan"]
    assert scan["complete"] and scan["passes"][0]["start"] == position["offset"] - 50
    assert resumed.loaded == 2500 - before  # what the first attempt had committed is not written again
    wc.assert_mirror_matches_shop()
    assert wc.h.query("SELECT count(*), count(DISTINCT order_id) FROM orders") == [(2500, 2500)]
    assert records.get_cursor(wc.h.store, "wc", "backfill")["done"] is True  # type: ignore[index]


def test_backfill_restart_ignores_a_checkpoint(webcommander_factory: Callable[..., WebCommander]) -> None:
    wc = webcommander_factory(orders=1500, concurrency=1)
    wc.app.script("offset=1000", [Fault.server_error(500)] * 2)
    with pytest.raises(ServerError):
        wc.h.backfill()
    assert records.get_cursor(wc.h.store, "wc", "backfill")["position"]["offset"] > 0  # type: ignore[index]
    again = wc.h.backfill(restart=True)
    assert "resumed_from" not in again.details and again.fetched == 1500
    wc.assert_mirror_matches_shop()


def test_a_woocommerce_backfill_cut_short_resumes_and_then_syncs(woo_factory: Callable[..., Woo]) -> None:
    woo = woo_factory(orders=900, notes="none")
    woo.app.script("page=6", [Fault.server_error(500)] * 2)
    with pytest.raises(ServerError):
        woo.h.backfill()
    checkpoint = records.get_cursor(woo.h.store, "woo", "backfill")
    assert checkpoint is not None and 1 < checkpoint["position"] <= 6
    assert records.get_cursor(woo.h.store, "woo", "orders") is None  # no incremental start yet
    resumed = woo.h.sync()  # a sync of a shop whose backfill was cut short finishes the backfill
    assert resumed.kind == "backfill" and resumed.details["resumed_from"] == checkpoint["position"] - 1
    assert records.get_cursor(woo.h.store, "woo", "orders") is not None
    woo.assert_mirror_matches_shop()


def test_quarantined_records_are_kept_in_the_state_store_until_they_map(
    webcommander_factory: Callable[..., WebCommander],
) -> None:
    wc = webcommander_factory(orders=300)
    good = wc.shop.orders()[0]
    broken = {**good, "id": 999_001, "items": [{**good["items"][0], "price": "abc"}, *good["items"][1:]]}
    wc.shop.add_raw(broken)
    first = wc.h.backfill()
    assert first.quarantined == 1 and records.quarantine_count(wc.h.store, "wc") == 1
    again = wc.h.sync()  # the same bad payload: still one row, and it is not mapped again
    assert again.mapped == 0 and records.quarantine_count(wc.h.store, "wc") == 1
    wc.shop.add_raw({**good, "id": 999_001})  # the shop fixed it
    fixed = wc.h.sync()
    assert fixed.loaded == 1 and records.quarantine_count(wc.h.store, "wc") == 0
    assert wc.h.query("SELECT count(*) FROM orders WHERE order_id = '999001'") == [(1,)]


def test_a_failed_write_stops_the_checkpoint_before_the_lost_batch(
    woo_factory: Callable[..., Woo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches are written one after another; when one fails, none after it may be written and
    checkpointed, or the resumed backfill would start past orders the mirror never got."""
    woo = woo_factory(orders=1500, notes="none", refunds=False)
    real_write, calls = Mirror.write, []

    def write_failing_once(self: Mirror, batch: Any, now: Any = None, **kwargs: Any) -> Any:
        calls.append(len(batch))
        if len(calls) == 2:
            raise RuntimeError("Out of Memory Error: could not allocate block (simulated)")
        return real_write(self, batch, now, **kwargs)

    monkeypatch.setattr(Mirror, "write", write_failing_once)
    with pytest.raises(RuntimeError, match="Out of Memory"):
        woo.h.backfill()
    monkeypatch.setattr(Mirror, "write", real_write)
    checkpoint = records.get_cursor(woo.h.store, "woo", "backfill")
    # After the first batch: the run writes its first page at once, so it is one page (100 orders).
    assert checkpoint is not None and checkpoint["position"] == 2
    assert woo.h.query("SELECT count(*) FROM orders") == [(100,)]
    woo.h.backfill()
    woo.assert_mirror_matches_shop()


def test_a_note_on_an_order_in_the_edge_arrives(woo_factory: Callable[..., Woo]) -> None:
    """The newest change stays in the edge while the shop is quiet; its order is listed but skipped,
    so its notes must still be read with the other open orders'."""
    woo = woo_factory()
    woo.clock.frozen = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=3)
    woo.h.backfill()
    oid = _open_order(woo.shop)
    woo.shop.update_order(oid, {"customer_note": "touched"})
    woo.clock.frozen = None  # the shop's clock moves on: the change is settled and joins the edge
    woo.h.sync()
    assert oid in {int(k) for k in records.get_cursor(woo.h.store, "woo", "orders")["edge"]}  # type: ignore[index]
    woo.shop.add_note(oid, "Added while the order sat in the edge", customer_note=True)
    stats = woo.h.sync()
    assert stats.details["edge_skipped"] == 1
    comments = woo.h.query(f"SELECT text FROM comments WHERE order_id = '{oid}'")
    assert ("Added while the order sat in the edge",) in comments


def test_records_quarantined_before_the_state_store_existed_are_counted(
    webcommander_factory: Callable[..., WebCommander],
) -> None:
    wc = webcommander_factory(orders=200)
    good = wc.shop.orders()[0]
    wc.shop.add_raw({**good, "id": 999_002, "items": [{**good["items"][0], "price": "abc"}]})
    # A mirror built without a state store (as the previous version did)...
    asyncio.run(backfill_shop(wc.h.shop, wc.h.settings, wc.h.mirror))
    assert wc.h.query("SELECT count(*) FROM quarantine") == [(1,)]
    assert records.quarantine_count(wc.h.store, "wc") == 0
    # ...then synced with one: the store learns of the bad record. That first run maps every order
    # once (the store holds no versions yet, so nothing says the mirror follows it); the next, none.
    stats = wc.h.sync()
    assert stats.mapped == 201 and records.quarantine_count(wc.h.store, "wc") == 1
    stats = wc.h.sync()
    assert stats.mapped == 0 and stats.loaded == 0 and records.quarantine_count(wc.h.store, "wc") == 1


class ShiftAfterFirstPage:
    """After the first page of the changed-orders listing: two orders of that page are trashed and two
    new ones created, so the total stays the same while every later order moves up two places."""

    def __init__(self, app: Any, store: WooCommerceStore):
        self.app, self.store, self.victims, self.done = app, store, list[int](), False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        query = scope.get("query_string", b"") if scope["type"] == "http" else b""
        await self.app(scope, receive, send)
        first_page = b"modified_after" in query and b"status=any" in query and b"offset=0&" in query + b"&"
        if self.victims and not self.done and first_page:
            self.done = True
            for victim in self.victims:
                self.store.trash(victim)
                _new_order(self.store)


def test_an_order_passed_over_when_the_window_shifts_is_read_by_the_next_run(
    woo_factory: Callable[..., Woo],
) -> None:
    """Two orders of the first page leave the window after it was read, so the next pages start two
    places later and one order is never listed. Its stamp is older than the cursor's overlap: were the
    cursor to move, no later run would list it again."""
    woo = woo_factory(
        orders=400, wrap=ShiftAfterFirstPage, notes="none", refunds=False, page_size=50, sync_overlap=1
    )
    woo.h.backfill()
    ids = woo.shop.order_ids()
    passed_over = ids[50]  # the first of the second page, once two before it have gone
    time.sleep(1.1)
    woo.shop.update_order(passed_over, {"customer_note": "changed early"})
    time.sleep(3)
    for oid in ids[:120]:
        if oid != passed_over:
            woo.shop.update_order(oid, {"customer_note": "changed later"})
    time.sleep(1.1)  # settled, and before the run's start
    woo.wrapper.victims = ids[:2]
    woo.h.sync()
    assert woo.wrapper.done
    note = woo.h.query(f"SELECT customer_note FROM orders WHERE order_id = '{passed_over}'")
    assert note != [("changed early",)]  # the shift passed over it...
    woo.h.sync()  # ...and the cursor held back, so this run lists it again
    woo.assert_mirror_matches_shop(trashed=set(ids[:2]))
