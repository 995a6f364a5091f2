"""The DuckDB mirror: bulk upsert keyed on (platform, shop, order id), idempotent, quarantine kept."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from ordersync.mirror.batch import Batch, LoadedOrder, QuarantinedRecord, order_tables, quarantine_table
from ordersync.mirror.store import Mirror
from ordersync.models import LineItem, Order, Payment, Refund, RefundLine


def order(order_id: str, total: str = "20.00", items: int = 2, shop: str = "s1") -> Order:
    lines = [
        LineItem(
            external_id=f"{order_id}-{i}",
            name=f"item {i}",
            quantity=Decimal(1),
            unit_price=Decimal("10.00"),
            subtotal=Decimal("10.00"),
            total=Decimal("10.00"),
        )
        for i in range(items)
    ]
    return Order(
        platform="webcommander",
        shop=shop,
        external_id=order_id,
        status="pending",
        currency="AUD",
        created_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        subtotal=Decimal(total),
        total=Decimal(total),
        line_items=lines,
        payments=[Payment(external_id="p1", amount=Decimal(total), status="paid")],
        refunds=[
            Refund(
                external_id="r1",
                amount=Decimal("1.50"),
                lines=[RefundLine(line_item_id=f"{order_id}-0", amount=Decimal("1.50"))],
            )
        ],
    )


def batch_of(*orders: Order, version: str = "v1") -> Batch:
    batch = Batch()
    for o in orders:
        batch.add(
            o, b'{"id": "%s"}' % o.external_id.encode(), f"{o.external_id}-{o.total}-{version}", "http://x"
        )
    return batch


def dump(path: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        # mirror_meta is the file's own history (when a migration ran), not data.
        return {
            t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables if t != "mirror_meta"
        }
    finally:
        con.close()


def test_write_twice_is_identical_and_changed_orders_are_replaced(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    first = mirror.write(batch_of(order("1"), order("2"), order("3", items=3)))
    assert (first.written, first.unchanged) == (3, 0)
    before = dump(mirror.path)
    assert len(before["orders"]) == 3 and len(before["line_items"]) == 7 and len(before["refund_lines"]) == 3

    again = mirror.write(
        batch_of(order("1"), order("2"), order("3", items=3)), now=datetime(2030, 1, 1, tzinfo=UTC)
    )
    assert (again.written, again.unchanged) == (0, 3)
    assert dump(mirror.path) == before

    changed = mirror.write(batch_of(order("2", total="99.00", items=1)))
    assert changed.written == 1
    after = dump(mirror.path)
    assert len(after["orders"]) == 3
    assert len(after["line_items"]) == 6  # order 2 went from two lines to one, no leftovers
    with duckdb.connect(str(mirror.path), read_only=True) as con:
        assert con.execute("SELECT total FROM orders WHERE order_id = '2'").fetchone()[0] == Decimal("99.00")
        assert con.execute("SELECT count(*) FROM raw_orders").fetchone()[0] == 3


def test_same_order_twice_in_a_batch_is_written_once(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    mirror.write(batch_of(order("1"), order("1", total="30.00")))
    with duckdb.connect(str(mirror.path), read_only=True) as con:
        assert con.execute("SELECT count(*), max(total) FROM orders").fetchone() == (1, Decimal("30.00"))


def test_quarantine_is_kept_once_and_cleared_when_the_order_maps(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    bad = QuarantinedRecord(
        platform="webcommander",
        shop="s1",
        record_id="7",
        path="items[0].price",
        reason="not a number: 'abc'",
        payload=b'{"id": 7}',
        content_hash="h7",
        source_url="http://x/orders?offset=0",
    )
    for _ in range(2):
        batch = batch_of(order("1"))
        batch.quarantine(bad)
        mirror.write(batch)
    with duckdb.connect(str(mirror.path), read_only=True) as con:
        rows = con.execute("SELECT record_id, path, reason, payload FROM quarantine").fetchall()
    assert rows == [("7", "items[0].price", "not a number: 'abc'", '{"id": 7}')]
    mirror.write(batch_of(order("7")))
    with duckdb.connect(str(mirror.path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0


def test_file_is_not_held_open_between_writes_and_views_work(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    paid = {"payment_status": "paid"}
    unpaid = order("3").model_copy(update={"refunds": []})  # pending and unpaid: not a sale
    mirror.write(
        batch_of(order("1").model_copy(update=paid), order("2", shop="s2").model_copy(update=paid), unpaid)
    )
    # An analyst can open the file read-write between loads: nothing holds the lock.
    con = duckdb.connect(str(mirror.path))
    try:
        daily = con.execute(
            "SELECT shop, orders, gross, refunded FROM v_daily_sales ORDER BY shop"
        ).fetchall()
        assert daily == [
            ("s1", 1, Decimal("20.00"), Decimal("1.50")),
            ("s2", 1, Decimal("20.00"), Decimal("1.50")),
        ]
        assert con.execute("SELECT count(*) FROM v_orders").fetchone()[0] == 3
        assert con.execute("SELECT count(*) FROM v_order_lines").fetchone()[0] == 6
    finally:
        con.close()


def test_a_file_held_by_another_process_gives_a_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    import pytest

    from ordersync.errors import MirrorLockedError

    path = tmp_path / "m.duckdb"
    Mirror(path).write(batch_of(order("1")))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,sys,time; c=duckdb.connect({str(path)!r}); print('ok', flush=True); "
            "time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(MirrorLockedError, match=r"held by process \d+ \("):
            Mirror(path, lock_wait=0.3).write(batch_of(order("2")))
    finally:
        holder.kill()
        holder.wait()
    Mirror(path, lock_wait=5).write(batch_of(order("2")))


def test_a_mirror_from_before_the_added_columns_gains_them_and_loads_into_them(tmp_path: Path) -> None:
    from ordersync.mirror.schema import ADDED_COLUMNS, TABLES

    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        for table, columns in TABLES.items():
            old = [c for c in columns if c not in ADDED_COLUMNS.get(table, [])]
            con.execute(f"CREATE TABLE {table} ({', '.join(f'{n} {t}' for n, t in old)})")
    mirror = Mirror(path)
    mirror.write(batch_of(order("1")))
    with duckdb.connect(str(path), read_only=True) as con:
        for table, added in ADDED_COLUMNS.items():
            names = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            assert names[-len(added) :] == [n for n, _ in added]
        sold = con.execute("SELECT count(*) FROM line_items WHERE sold_product_id IS NULL").fetchone()
    assert sold == (2,)


def test_orders_are_keyed_in_the_file_and_an_older_file_gains_the_key(tmp_path: Path) -> None:
    from ordersync.mirror.schema import TABLES

    def keys(path: Path) -> dict[str, list[str]]:
        with duckdb.connect(str(path), read_only=True) as con:
            rows = con.execute(
                "SELECT table_name, constraint_column_names FROM duckdb_constraints()"
                " WHERE constraint_type = 'PRIMARY KEY' AND table_name IN ('orders', 'raw_orders')"
            ).fetchall()
        return dict(rows)

    new = Mirror(tmp_path / "new.duckdb")
    new.write(batch_of(order("1")))
    assert keys(new.path) == {t: ["platform", "shop", "order_id"] for t in ("orders", "raw_orders")}
    new.write(batch_of(order("1"), version="v2"))  # a rewrite replaces the row under the key
    with duckdb.connect(str(new.path)) as con, pytest.raises(duckdb.ConstraintException):
        con.execute("INSERT INTO orders BY NAME SELECT * EXCLUDE (missing_since, run_id) FROM orders")

    old = tmp_path / "old.duckdb"
    with duckdb.connect(str(old)) as con:
        for table, columns in TABLES.items():
            con.execute(f"CREATE TABLE {table} ({', '.join(f'{n} {t}' for n, t in columns)})")
    Mirror(old).write(batch_of(order("1")))
    assert keys(old) == {t: ["platform", "shop", "order_id"] for t in ("orders", "raw_orders")}

    # A file whose rows break the key keeps working without it (the log names the table).
    broken = tmp_path / "broken.duckdb"
    with duckdb.connect(str(broken)) as con:
        for table, columns in TABLES.items():
            con.execute(f"CREATE TABLE {table} ({', '.join(f'{n} {t}' for n, t in columns)})")
        con.execute(
            "INSERT INTO raw_orders (platform, shop, order_id) VALUES ('p', 's', '9'), ('p', 's', '9')"
        )
    Mirror(broken).write(batch_of(order("1")))
    assert keys(broken) == {"orders": ["platform", "shop", "order_id"]}
    with duckdb.connect(str(broken), read_only=True) as con:
        reason = con.execute("SELECT value FROM mirror_meta WHERE key = 'key:raw_orders'").fetchone()
    assert reason is not None and "duplicate" in reason[0].lower()  # recorded, not retried each open


def test_woocommerce_rows_written_before_paid_total_was_net_are_brought_to_it_once(tmp_path: Path) -> None:
    from ordersync.mirror.schema import TABLES

    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        for table, columns in TABLES.items():
            con.execute(f"CREATE TABLE {table} ({', '.join(f'{n} {t}' for n, t in columns)})")
        con.execute(
            "INSERT INTO orders (platform, shop, order_id, total, refunded_total, paid_total) VALUES"
            " ('woocommerce', 'w', '1', 30, 0, 30),"  # paid: gross was net already
            " ('woocommerce', 'w', '2', 30, 10, 30),"  # paid, refunded 10: net 20
            " ('woocommerce', 'w', '3', 30, 0, NULL),"  # unpaid: 0
            " ('webcommander', 'c', '4', 30, 10, 20)"  # WebCommander stated net already
        )
    Mirror(path).ensure_schema()
    Mirror(path).ensure_schema()  # once: a second open changes nothing
    with duckdb.connect(str(path), read_only=True) as con:
        paid = dict(con.execute("SELECT order_id, paid_total FROM orders").fetchall())
    assert paid == {"1": 30, "2": 20, "3": 0, "4": 20}


def _page_batch(orders: list[Order], *, fresh: bool, now: datetime) -> Batch:
    loaded = [
        LoadedOrder(o, b'{"id": "%s"}' % o.external_id.encode(), f"h-{o.external_id}", "http://x")
        for o in orders
    ]
    batch = Batch()
    batch.add_tables(
        order_tables(loaded, now), quarantine_table([], now), [key(o) for o in orders], fresh=fresh
    )
    return batch


def key(o: Order) -> tuple[str, str, str]:
    return (o.platform.value, o.shop, o.external_id)


def test_a_batch_of_new_orders_is_written_as_the_general_path_writes_it(tmp_path: Path) -> None:
    """Orders the run knows are new skip the join against the mirror; the file ends the same."""
    now = datetime(2024, 5, 1, tzinfo=UTC)
    orders = [order("1"), order("2", items=3), order("3", total="7.25")]
    fast, general = Mirror(tmp_path / "fast.duckdb"), Mirror(tmp_path / "general.duckdb")
    assert fast.write(_page_batch(orders, fresh=True, now=now), now).written == 3
    assert general.write(_page_batch(orders, fresh=False, now=now), now).written == 3
    assert dump(tmp_path / "fast.duckdb") == dump(tmp_path / "general.duckdb")
    events = dump(tmp_path / "fast.duckdb")["order_events"]
    assert [(e[2], e[4]) for e in events] == [("1", "new"), ("2", "new"), ("3", "new")]


def test_a_batch_is_fresh_only_if_every_page_in_it_is() -> None:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    batch = _page_batch([order("1")], fresh=True, now=now)
    assert batch.fresh and batch.nbytes > 0
    more = _page_batch([order("2")], fresh=False, now=now)
    batch.add_tables(*more.tables(now), [key(order("2"))], fresh=False)
    assert not batch.fresh
    direct = _page_batch([order("3")], fresh=True, now=now)
    direct.add(order("4"), b"{}", "h", "u")  # a single order added directly is never known to be new
    assert not direct.fresh
