"""Order history in the mirror: events, missing orders, what a sync reads back, and shared files."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ordersync.mirror.batch import Batch, QuarantinedRecord
from ordersync.mirror.schema import QUARANTINE, TABLES
from ordersync.mirror.store import Mirror
from ordersync.models import Comment, Order
from tests.unit.test_mirror import batch_of, order

T0 = datetime(2024, 5, 1, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)


def revised(o: Order, **fields: Any) -> Order:
    """The order with some fields changed, validated as a mapped one would be."""
    return Order.model_validate({**o.model_dump(), **fields})


def query(path: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def events(path: Path) -> list[tuple[Any, ...]]:
    return query(
        path,
        "SELECT order_id, kind, status_before, status, payment_status_before, payment_status,"
        " total_before, total, refunded_total_before, refunded_total"
        " FROM order_events ORDER BY observed_at, order_id",
    )


def missing_since(path: Path) -> dict[str, datetime | None]:
    return dict(query(path, "SELECT order_id, missing_since FROM orders"))


def test_new_orders_get_one_new_event_each_and_are_present(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    mirror.write(batch_of(order("1"), order("2", total="30.00")), now=T0)
    assert events(mirror.path) == [
        ("1", "new", None, "pending", None, None, None, Decimal("20.00"), None, Decimal("0")),
        ("2", "new", None, "pending", None, None, None, Decimal("30.00"), None, Decimal("0")),
    ]
    assert query(mirror.path, "SELECT DISTINCT observed_at FROM order_events") == [(T0,)]
    # The batch tables do not carry missing_since: INSERT BY NAME leaves it NULL, i.e. present.
    assert missing_since(mirror.path) == {"1": None, "2": None}


def test_a_status_change_gives_one_changed_event_with_before_and_after(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    mirror.write(batch_of(order("1"), order("2")), now=T0)
    # Both payloads changed (new version), but only order 1's status and payment status did.
    result = mirror.write(
        batch_of(revised(order("1"), status="processing", payment_status="paid"), order("2"), version="v2"),
        now=T0 + HOUR,
    )
    assert result.written == 2
    assert events(mirror.path)[2:] == [
        ("1", "changed", "pending", "processing", None, "paid", Decimal("20.00"), Decimal("20.00"),
         Decimal("0"), Decimal("0")),
    ]  # fmt: skip
    assert query(mirror.path, "SELECT max(observed_at) FROM order_events") == [(T0 + HOUR,)]


def test_successive_changes_in_one_session_each_compare_with_the_row_before(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    steps = [("pending", "20.00"), ("processing", "20.00"), ("processing", "25.00"), ("completed", "25.00")]
    with mirror.session():
        for hour, (status, total) in enumerate(steps):
            # Other orders are rewritten around it, so its stored row moves between writes.
            others = [order(str(n), total=f"{hour}.00") for n in range(10, 15)]
            mine = revised(order("1", total=total), status=status)
            mirror.write(batch_of(*others, mine, version=str(hour)), now=T0 + hour * HOUR)
    assert query(
        mirror.path,
        "SELECT kind, status_before, status, total_before, total FROM order_events"
        " WHERE order_id = '1' ORDER BY observed_at",
    ) == [
        ("new", None, "pending", None, Decimal("20.00")),
        ("changed", "pending", "processing", Decimal("20.00"), Decimal("20.00")),
        ("changed", "processing", "processing", Decimal("20.00"), Decimal("25.00")),
        ("changed", "processing", "completed", Decimal("25.00"), Decimal("25.00")),
    ]


@pytest.mark.parametrize(
    ("fields", "expect_event"),
    [
        ({"status": "completed"}, True),
        ({"payment_status": "refunded"}, True),
        ({"total": Decimal("25.00")}, True),
        ({"refunded_total": Decimal("5.00")}, True),
        ({"comments": [Comment(external_id="c1", text="called the customer")]}, False),
        ({"customer_note": "leave at the door"}, False),
    ],
)
def test_only_status_payment_and_money_changes_are_events(
    tmp_path: Path, fields: dict[str, Any], expect_event: bool
) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    mirror.write(batch_of(order("1")), now=T0)
    result = mirror.write(batch_of(revised(order("1"), **fields), version="v2"), now=T0 + HOUR)
    assert result.written == 1  # the order was rewritten either way
    kinds = [row[1] for row in events(mirror.path)]
    assert kinds == (["new", "changed"] if expect_event else ["new"])


def test_rewriting_an_unchanged_order_makes_no_event(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    mirror.write(batch_of(order("1")), now=T0)
    result = mirror.write(batch_of(order("1")), now=T0 + HOUR)
    assert (result.written, result.unchanged) == (0, 1)
    assert [row[1] for row in events(mirror.path)] == ["new"]


def test_mark_presence_marks_and_clears_once_and_leaves_other_shops_alone(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    mirror.write(batch_of(order("1"), order("2"), order("3"), order("9", shop="s2")), now=T0)

    # Unknown ids and repeats in the listing do not matter; any iterable will do.
    assert mirror.mark_presence("webcommander", "s1", iter(["1", "3", "3", "404"]), T0 + HOUR) == (1, 0)
    assert missing_since(mirror.path) == {"1": None, "2": T0 + HOUR, "3": None, "9": None}
    assert mirror.mark_presence("webcommander", "s1", ["1", "3"], T0 + 2 * HOUR) == (0, 0)
    assert missing_since(mirror.path)["2"] == T0 + HOUR  # still missing since the first time
    assert query(mirror.path, "SELECT order_id FROM v_missing_orders") == [("2",)]
    assert query(mirror.path, "SELECT count(*) FROM v_orders") == [(4,)]  # kept, not deleted

    assert mirror.mark_presence("webcommander", "s1", ["1", "2", "3"], T0 + 3 * HOUR) == (0, 1)
    assert mirror.mark_presence("webcommander", "s1", ["1", "2", "3"], T0 + 4 * HOUR) == (0, 0)
    assert set(missing_since(mirror.path).values()) == {None}
    assert query(
        mirror.path,
        "SELECT order_id, observed_at, kind, status_before, status FROM order_events"
        " WHERE kind <> 'new' ORDER BY observed_at",
    ) == [
        ("2", T0 + HOUR, "disappeared", "pending", "pending"),
        ("2", T0 + 3 * HOUR, "reappeared", "pending", "pending"),
    ]


def test_a_write_of_a_missing_order_brings_it_back(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    mirror.write(batch_of(order("1"), order("2")), now=T0)
    assert mirror.mark_presence("webcommander", "s1", [], T0 + HOUR) == (2, 0)

    # Changed: rewritten with missing_since NULL, and one 'reappeared' event carrying the change.
    changed = mirror.write(batch_of(revised(order("1"), status="cancelled"), version="v2"), now=T0 + 2 * HOUR)
    # Unchanged: not rewritten (loaded_at stays), but present again.
    unchanged = mirror.write(batch_of(order("2")), now=T0 + 3 * HOUR)

    assert (changed.written, unchanged.written) == (1, 0)
    assert missing_since(mirror.path) == {"1": None, "2": None}
    assert query(mirror.path, "SELECT order_id, loaded_at FROM orders ORDER BY 1") == [
        ("1", T0 + 2 * HOUR),
        ("2", T0),
    ]
    assert [row[:4] for row in events(mirror.path)[4:]] == [
        ("1", "reappeared", "pending", "cancelled"),
        ("2", "reappeared", "pending", "pending"),
    ]
    assert mirror.mark_presence("webcommander", "s1", ["1", "2"], T0 + 4 * HOUR) == (0, 0)


def quarantined(record_id: str | None, content_hash: str) -> QuarantinedRecord:
    return QuarantinedRecord(
        platform="webcommander",
        shop="s1",
        record_id=record_id,
        path="items[0].price",
        reason="not a number",
        payload=b"{}",
        content_hash=content_hash,
        source_url="http://x",
    )


def test_known_hashes_of_a_shop_include_its_quarantined_records(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    assert mirror.known_hashes("webcommander", "s1") == {}
    assert not mirror.path.exists()  # asking does not create the file

    batch = batch_of(order("1"), order("2"), order("5", shop="s2"))
    batch.quarantine(quarantined("7", "h7"))
    batch.quarantine(quarantined(None, "no-id"))  # cannot be matched to a listed order
    mirror.write(batch, now=T0)
    assert mirror.known_hashes("webcommander", "s1") == {"1": "1-20.00-v1", "2": "2-20.00-v1", "7": "h7"}

    # Order 1's payload changed and no longer maps: the quarantined payload is the current one.
    later = Batch()
    later.quarantine(quarantined("1", "h1-bad"))
    mirror.write(later, now=T0 + HOUR)
    assert mirror.known_hashes("webcommander", "s1")["1"] == "h1-bad"
    assert mirror.known_hashes("woocommerce", "s1") == {}


def test_a_file_from_before_events_is_upgraded_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    tables, _ = batch_of(order("1"), order("2")).tables(T0)
    with duckdb.connect(str(path)) as con:  # what an earlier version wrote: no events, no missing_since
        for table, columns in [*TABLES.items(), ("quarantine", QUARANTINE)]:
            con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns)})")
        for table, data in tables.items():
            con.register("t", data)
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM t")
            con.unregister("t")
    assert "missing_since" not in dict(query(path, "SELECT name, type FROM pragma_table_info('orders')"))

    mirror = Mirror(path)
    assert mirror.known_hashes("webcommander", "s1") == {"1": "1-20.00-v1", "2": "2-20.00-v1"}
    assert missing_since(path) == {"1": None, "2": None}
    assert query(path, "SELECT count(*) FROM line_items") == [(4,)]
    assert mirror.mark_presence("webcommander", "s1", ["1"], T0 + HOUR) == (1, 0)
    mirror.write(batch_of(revised(order("1"), status="completed"), version="v2"), now=T0 + 2 * HOUR)
    assert [row[:2] for row in events(path)] == [("2", "disappeared"), ("1", "changed")]
    assert query(path, "SELECT order_id FROM v_missing_orders") == [("2",)]


def test_status_durations_from_a_known_sequence_of_events(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    mirror.ensure_schema()
    sequence = [
        # order, hours after T0, kind, status before, status
        ("A", 0, "new", None, "pending"),
        ("A", 2, "changed", "pending", "processing"),
        ("A", 5, "changed", "processing", "completed"),
        ("B", 0, "new", None, "pending"),
        ("B", 4, "changed", "pending", "processing"),
        ("C", 1, "new", None, "pending"),
        ("C", 2, "changed", "pending", "pending"),  # paid: still pending, the stay goes on
        ("C", 3, "disappeared", "pending", "pending"),
        ("C", 10, "reappeared", "pending", "pending"),
        ("D", 0, "new", None, "on-hold"),
        ("D", 1, "changed", "on-hold", "pending"),
        ("D", 6, "changed", "pending", "processing"),
    ]
    with duckdb.connect(str(mirror.path)) as con:
        con.executemany(
            "INSERT INTO order_events (platform, shop, order_id, observed_at, kind, status_before, status)"
            " VALUES ('webcommander', 's1', ?, ?, ?, ?, ?)",
            [(o, T0 + h * HOUR, kind, before, after) for o, h, kind, before, after in sequence],
        )
        durations = con.execute(
            "SELECT status, stays, avg_hours, median_hours, max_hours, orders_in_status"
            " FROM v_status_durations ORDER BY status"
        ).fetchall()
        stays_of_c = con.execute(
            "SELECT kind, first_seen, entered_at, left_at, left_by FROM v_order_events"
            " WHERE order_id = 'C' ORDER BY entered_at"
        ).fetchall()
        open_seconds = con.execute(
            "SELECT min(seconds_in_status) FROM v_order_events WHERE left_at IS NULL"
        ).fetchone()
    # Stays that began before the mirror first saw the order (A, B, C pending; D on-hold) have no
    # known start and count in no duration; D's pending stay (1h to 6h) and A's processing do.
    assert durations == [
        ("completed", 0, None, None, None, 1),
        ("on-hold", 0, None, None, None, 0),
        ("pending", 1, 5.0, 5.0, 5.0, 1),
        ("processing", 1, 3.0, 3.0, 3.0, 2),
    ]
    assert stays_of_c == [
        ("new", True, T0 + HOUR, T0 + 3 * HOUR, "disappeared"),
        ("reappeared", False, T0 + 10 * HOUR, None, None),
    ]
    assert open_seconds is not None and open_seconds[0] > 0  # open stays run to now


def test_two_mirrors_on_one_file_write_concurrently_from_two_threads(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    mirrors = {shop: Mirror(path) for shop in ("s1", "s2")}
    batches = {
        shop: [batch_of(*(order(f"{k}-{i}", shop=shop) for i in range(25))) for k in range(12)]
        for shop in mirrors
    }
    both_open = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def run(shop: str) -> None:
        try:
            with mirrors[shop].session():  # two sessions on one file in one process
                both_open.wait()
                for batch in batches[shop]:
                    mirrors[shop].write(batch, now=T0)
                mirrors[shop].mark_presence("webcommander", shop, [f"0-{i}" for i in range(25)], T0 + HOUR)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(shop,)) for shop in mirrors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert query(
        path,
        "SELECT shop, count(*), count(missing_since) FROM orders GROUP BY shop ORDER BY shop",
    ) == [("s1", 300, 275), ("s2", 300, 275)]
    assert query(path, "SELECT kind, count(*) FROM order_events GROUP BY kind ORDER BY kind") == [
        ("disappeared", 550),
        ("new", 600),
    ]
    assert query(path, "SELECT count(*) FROM line_items") == [(1200,)]


def completed_at(path: Path) -> dict[str, datetime | None]:
    return dict(query(path, "SELECT order_id, completed_at FROM orders"))


@pytest.mark.parametrize("fresh", [True, False])
def test_completed_at_is_observed_where_the_shop_gives_none(tmp_path: Path, fresh: bool) -> None:
    """WebCommander states no completion time: the mirror keeps the shop's updated_at of the first
    version it sees completed, and keeps it afterwards, as WooCommerce keeps date_completed."""
    mirror = Mirror(tmp_path / "m.duckdb")
    done_before = revised(order("A"), status="completed", updated_at=T0 - 5 * HOUR)
    first = batch_of(done_before, order("B"))
    first.fresh = fresh
    mirror.write(first, now=T0)
    # Already completed when first seen: its last change, which is no earlier than the completion.
    assert completed_at(mirror.path) == {"A": T0 - 5 * HOUR, "B": None}

    commented = revised(done_before, comments=[Comment(external_id="n1", text="packed")])
    b_done = revised(order("B"), status="completed", updated_at=T0 + HOUR / 2)
    mirror.write(batch_of(commented, b_done, version="v2"), now=T0 + HOUR)
    # Seen changing to completed: that version's updated_at. Rewritten while completed: kept.
    assert completed_at(mirror.path) == {"A": T0 - 5 * HOUR, "B": T0 + HOUR / 2}

    reopened = revised(done_before, status="processing", updated_at=T0 + 2 * HOUR)
    mirror.write(batch_of(reopened, version="v3"), now=T0 + 2 * HOUR)
    assert completed_at(mirror.path)["A"] == T0 - 5 * HOUR  # moved on: the time is kept
    again = revised(done_before, updated_at=T0 + 3 * HOUR)
    mirror.write(batch_of(again, version="v4"), now=T0 + 4 * HOUR)
    assert completed_at(mirror.path)["A"] == T0 + 3 * HOUR  # completed again: the new time


def test_a_platform_that_states_the_completion_time_keeps_its_own(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    woo = revised(order("W"), platform="woocommerce", status="completed", updated_at=T0)
    mirror.write(batch_of(woo), now=T0)
    stated = T0 - HOUR
    mirror.write(batch_of(revised(woo, completed_at=stated), version="v2"), now=T0 + HOUR)
    assert completed_at(mirror.path) == {"W": stated}
    mirror.write(batch_of(revised(woo, status="processing"), version="v3"), now=T0 + 2 * HOUR)
    assert completed_at(mirror.path) == {"W": None}  # what the shop says, never an observed time
