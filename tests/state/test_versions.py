"""Order versions in the state store: the feed routing reads, the hashes a sync skips on and the
notes refresh's plan, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pyarrow as pa

from ordersync.mirror.batch import LoadedOrder, order_tables
from ordersync.models import Comment, Order, OrderStatus, Payment, PaymentStatus, Platform, Refund
from ordersync.state import records, versions
from ordersync.state.store import StateStore
from ordersync.sync.versions import version_rows
from ordersync.writeback.observe import NoteFilter, from_order, from_version


def _row(order_id: str, digest: str, status: str = "processing", comments: list[str] | None = None) -> dict:
    facts = {
        "number": order_id,
        "payment_status": "paid",
        "currency": "EUR",
        "comments": [[c, f"note {c}", True, "Kim"] for c in comments or []],
        "refunds": [],
        "payments": [],
    }
    return {
        "platform": "woocommerce",
        "shop": "woo",
        "order_id": order_id,
        "content_hash": digest,
        "status": status,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "updated_at": datetime(2026, 1, int(order_id) % 28 + 1, tzinfo=UTC),
        "facts": orjson.dumps(facts).decode(),
    }


def _record(store: StateStore, seq: int, rows: list[dict]) -> None:
    with store.engine.begin() as connection:
        versions.record(connection, rows, seq)


def test_the_feed_holds_each_order_once_at_the_batch_that_last_changed_it(ready_store: StateStore) -> None:
    _record(ready_store, 1, [_row("1", "a"), _row("2", "b"), _row("3", "c")])
    _record(ready_store, 2, [_row("2", "b"), _row("3", "c2"), _row("4", "d")])  # 2 read again, unchanged
    feed = versions.changed_since(ready_store, "woocommerce", "woo", (0, ""), 100)
    assert [(v.order_id, v.seq) for v in feed] == [("1", 1), ("2", 1), ("3", 2), ("4", 2)]
    after_first = versions.changed_since(ready_store, "woocommerce", "woo", (1, "2"), 100)
    assert [v.order_id for v in after_first] == ["3", "4"]
    # A chunk boundary inside a batch: the position is (seq, order id).
    inside = versions.changed_since(ready_store, "woocommerce", "woo", (2, "3"), 1)
    assert [v.order_id for v in inside] == ["4"]
    assert versions.changed_since(ready_store, "woocommerce", "other", (0, ""), 100) == []
    assert feed[2].created_at.tzinfo is not None and feed[2].facts["currency"] == "EUR"


def test_known_hashes_are_the_versions_with_a_held_quarantine_winning(ready_store: StateStore) -> None:
    _record(ready_store, 1, [_row("1", "a"), _row("2", "b")])
    records.record_quarantine(
        ready_store,
        [records.Quarantined("woocommerce", "woo", "2", "total", "bad", "{}", "b-bad", None)],
    )
    assert versions.known_hashes(ready_store, "woocommerce", "woo") == {"1": "a", "2": "b-bad"}
    assert versions.known_hashes(ready_store, "webcommander", "woo") == {}


def test_open_orders_are_not_final_or_modified_lately_with_their_comment_ids(ready_store: StateStore) -> None:
    _record(
        ready_store,
        1,
        [
            _row("1", "a", "processing", ["11", "12"]),
            _row("2", "b", "completed"),
            _row("27", "c", "completed", ["9"]),  # updated on 2026-01-28
        ],
    )
    final = ["completed", "cancelled"]
    plan = versions.open_orders(ready_store, "woocommerce", "woo", final_statuses=final, modified_since=None)
    assert plan == {"1": frozenset({"11", "12"})}
    since = datetime(2026, 1, 20, tzinfo=UTC)
    plan = versions.open_orders(ready_store, "woocommerce", "woo", final_statuses=final, modified_since=since)
    assert plan == {"1": frozenset({"11", "12"}), "27": frozenset({"9"})}
    everything = versions.open_orders(
        ready_store, "woocommerce", "woo", final_statuses=[], modified_since=None
    )
    assert set(everything) == {"1", "2", "27"}


def _order() -> Order:
    """A WooCommerce order with what routing reads: a person's note, a note WooCommerce wrote itself,
    an API note, a refund with no id, a paid and a pending payment."""
    return Order(
        platform=Platform.WOOCOMMERCE,
        shop="woo",
        external_id="41",
        number="41",
        status=OrderStatus.PROCESSING,
        status_raw="processing",
        payment_status=PaymentStatus.PAID,
        currency="EUR",
        created_at=datetime(2026, 11, 2, 9, tzinfo=UTC),
        updated_at=datetime(2026, 11, 3, 9, tzinfo=UTC),
        subtotal=Decimal("40"),
        total=Decimal("40"),
        comments=[
            Comment(external_id="c1", text="Please ring twice", author="Kim", customer_visible=True),
            Comment(external_id="c2", text="Order status changed from Pending to Processing.", author="Kim"),
            Comment(external_id="c3", text="Synced by the ERP", author="WooCommerce"),
        ],
        refunds=[Refund(amount=Decimal("7.5"), reason="damaged")],
        payments=[
            Payment(external_id="p1", amount=Decimal("40"), gateway="stripe", status=PaymentStatus.PAID),
            Payment(external_id="p2", amount=Decimal("5"), gateway="bacs", status=PaymentStatus.PENDING),
        ],
    )


def test_a_version_built_from_a_batch_observes_the_order_as_the_order_itself_does(
    ready_store: StateStore,
) -> None:
    """What routing reads from the feed is what it would read from the canonical order: the same
    statuses, comments (under the shop's note rules), refunds and paid payments."""
    order = _order()
    tables = order_tables([LoadedOrder(order, b"{}", "h1", "http://shop/orders")], datetime.now(UTC))
    rows = version_rows(tables)
    assert [r["order_id"] for r in rows] == ["41"]
    _record(ready_store, 5, rows)
    (version,) = versions.changed_since(ready_store, "woocommerce", "woo", (0, ""), 10)
    assert version.seq == 5 and version.status == "processing"
    for notes in (NoteFilter(), NoteFilter(api_notes=False)):
        assert from_version(version, notes) == from_order(order, notes)
    observed = from_version(version, NoteFilter(api_notes=False))
    assert [c[1] for c in observed.comments] == ["Please ring twice"]
    assert [p[0] for p in observed.payments] == ["p1"] and observed.refunds[0][1] == Decimal("7.5")


def test_version_rows_of_a_batch_without_orders_are_none() -> None:
    assert version_rows({}) == []
    assert version_rows({"orders": pa.table({"order_id": pa.array([], pa.string())})}) == []
