"""The write-back's state in the mirror: links, operations and conflicts, replaced whole, and the views
that show analysts which order is which in the other shop and what each operation did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from ordersync.mirror.schema import QUARANTINE, TABLES
from ordersync.mirror.store import Mirror
from ordersync.mirror.sync_state import SYNC_TABLES, sync_create_statements, write_sync_state
from tests.unit.test_mirror import batch_of, order
from tests.unit.test_mirror_events import query, revised

T0 = datetime(2024, 5, 1, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)

LINK = {
    "source_shop": "wc1",
    "source_order_id": "1",
    "target_shop": "woo1",
    "target_order_id": "501",
    "created_at": T0,
    "total_difference": Decimal("1.2300"),
}
OPERATION = {
    "id": 7,
    "idempotency_key": "refund:wc1:1:r1->woo1",
    "shop": "woo1",
    "kind": "refund",
    "order_id": "501",
    "origin": "replication",
    "source_shop": "wc1",
    "source_order_id": "1",
    "status": "done",
    "attempts": 1,
    "last_error": None,
    "result": {"refund_id": "r9", "amount": "12.50"},
    "summary": "refund 12.50 EUR",
    "created_at": T0,
    "next_attempt_at": None,
    "done_at": T0 + HOUR,
}
CONFLICT = {
    "id": 3,
    "field": "status",
    "shop_a": "wc1",
    "order_a": "1",
    "value_a": "completed",
    "changed_a": T0,
    "shop_b": "woo1",
    "order_b": "501",
    "value_b": "cancelled",
    "changed_b": T0 + HOUR,
    "policy": "latest",
    "winner_shop": "woo1",
    "outcome": "applied",
    "detected_at": T0 + 2 * HOUR,
}


def columns(path: Path, table: str) -> list[tuple[str, str]]:
    return query(path, f"SELECT name, type FROM pragma_table_info('{table}') ORDER BY cid")


def test_tables_hold_exactly_the_listed_columns_and_nothing_else_sync_related(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    mirror.ensure_schema()
    for table, cols in SYNC_TABLES.items():
        assert columns(mirror.path, table) == [
            (name, "TIMESTAMP WITH TIME ZONE" if sql == "TIMESTAMPTZ" else sql) for name, sql in cols
        ]
    assert [name for name, _ in SYNC_TABLES["sync_links"]] == [
        "source_shop", "source_order_id", "target_shop", "target_order_id", "created_at",
        "total_difference",
    ]  # fmt: skip
    assert [name for name, _ in SYNC_TABLES["sync_operations"]] == [
        "id", "idempotency_key", "shop", "kind", "order_id", "origin", "source_shop", "source_order_id",
        "status", "attempts", "last_error", "result", "summary", "created_at", "next_attempt_at", "done_at",
    ]  # fmt: skip
    assert [name for name, _ in SYNC_TABLES["sync_conflicts"]] == [
        "id", "field", "shop_a", "order_a", "value_a", "changed_a", "shop_b", "order_b", "value_b",
        "changed_b", "policy", "winner_shop", "outcome", "detected_at",
    ]  # fmt: skip
    # No operation payload (what was sent to a shop) and nothing credential-like has a column.
    tables = query(mirror.path, "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'sync_%'")
    assert sorted(t for (t,) in tables) == sorted(SYNC_TABLES)


def test_write_stores_rows_with_json_text_and_nulls_for_missing_keys(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    sparse = {"id": 8, "idempotency_key": "k8", "shop": "wc1", "kind": "status", "status": "pending"}
    mirror.write_sync_state([LINK], [OPERATION, sparse], [CONFLICT])

    assert query(mirror.path, "SELECT * FROM sync_links") == [tuple(LINK.values())]
    assert query(mirror.path, "SELECT * FROM sync_conflicts") == [tuple(CONFLICT.values())]
    rows = query(
        mirror.path, "SELECT id, result, summary, attempts, done_at FROM sync_operations ORDER BY id"
    )
    assert rows == [
        (7, '{"amount":"12.50","refund_id":"r9"}', "refund 12.50 EUR", 1, T0 + HOUR),
        (8, None, None, None, None),
    ]
    assert query(mirror.path, "SELECT result->>'refund_id' FROM sync_operations WHERE id = 7") == [("r9",)]


def test_a_second_write_replaces_the_first(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    mirror.write_sync_state([LINK], [OPERATION], [CONFLICT])
    other_link = {**LINK, "source_order_id": "2", "target_order_id": "502"}
    retried = {**OPERATION, "status": "failed", "attempts": 2, "last_error": "HTTP 500"}
    mirror.write_sync_state([LINK, other_link], [retried], [])

    links = query(mirror.path, "SELECT source_order_id, target_order_id FROM sync_links ORDER BY ALL")
    assert links == [("1", "501"), ("2", "502")]
    assert query(mirror.path, "SELECT id, status, attempts, last_error FROM sync_operations") == [
        (7, "failed", 2, "HTTP 500")
    ]
    assert query(mirror.path, "SELECT count(*) FROM sync_conflicts") == [(0,)]


def test_a_bad_row_writes_nothing_and_keeps_the_previous_copy(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    mirror.write_sync_state([LINK], [OPERATION], [CONFLICT])
    with pytest.raises(ValueError, match="sync_operations row 0: not a column: payload"):
        mirror.write_sync_state([], [{**OPERATION, "payload": {"Authorization": "Basic x"}}], [])
    with pytest.raises(ValueError, match="created_at is a naive datetime"):
        mirror.write_sync_state([{**LINK, "created_at": datetime(2024, 5, 1, 9)}], [], [])
    assert query(mirror.path, "SELECT count(*) FROM sync_links") == [(1,)]
    assert query(mirror.path, "SELECT count(*) FROM sync_operations") == [(1,)]


def test_times_in_another_zone_are_stored_as_the_same_instant(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    sydney = T0.astimezone(timezone(timedelta(hours=10)))
    mirror.write_sync_state([{**LINK, "created_at": sydney}], [], [])
    assert query(mirror.path, "SELECT created_at FROM sync_links") == [(T0,)]


def test_views_join_links_and_operations_to_mirrored_orders(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    source = revised(
        order("1", total="12.50", shop="wc1"), number="WC-1", payment_status="paid", currency="EUR"
    )
    target = revised(order("501", total="12.50", shop="woo1"), platform="woocommerce", number="#501")
    mirror.write(batch_of(source, target), now=T0)
    unmirrored = {**LINK, "source_order_id": "2", "target_order_id": "999"}
    create = {**OPERATION, "id": 9, "kind": "create_order", "order_id": None, "source_order_id": "2"}
    mirror.write_sync_state([LINK, unmirrored], [OPERATION, create], [])

    links = query(
        mirror.path,
        "SELECT source_order_id, source_platform, source_number, source_status, source_payment_status,"
        " source_total, source_currency, target_order_id, target_platform, target_number, target_status,"
        " target_payment_status, target_total, target_currency, linked_at"
        " FROM v_order_links ORDER BY source_order_id",
    )
    assert links == [
        ("1", "webcommander", "WC-1", "pending", "paid", Decimal("12.50"), "EUR",
         "501", "woocommerce", "#501", "pending", None, Decimal("12.50"), "AUD", T0),
        ("2", None, None, None, None, None, None, "999", None, None, None, None, None, None, T0),
    ]  # fmt: skip

    ops = query(
        mirror.path,
        "SELECT id, kind, status, summary, order_number, order_status, source_number"
        " FROM v_sync_operations ORDER BY id",
    )
    assert ops == [
        (7, "refund", "done", "refund 12.50 EUR", "#501", "pending", "WC-1"),
        (9, "create_order", "done", "refund 12.50 EUR", None, None, None),
    ]
    # The operation's own columns come through whole.
    view_columns = [name for name, _ in columns(mirror.path, "v_sync_operations")]
    assert view_columns[: len(SYNC_TABLES["sync_operations"])] == [
        n for n, _ in SYNC_TABLES["sync_operations"]
    ]


def test_an_older_mirror_file_gains_the_tables_and_keeps_its_orders(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    tables, _ = batch_of(revised(order("1", shop="wc1"), number="WC-1")).tables(T0)
    with duckdb.connect(str(path)) as con:  # what an earlier version wrote: no sync tables, no views
        for table, cols in [*TABLES.items(), ("quarantine", QUARANTINE)]:
            con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in cols)})")
        for table, data in tables.items():
            con.register("t", data)
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM t")
            con.unregister("t")
    assert query(path, "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'sync_%'") == [(0,)]

    Mirror(path).write_sync_state([LINK], [OPERATION], [CONFLICT])
    assert query(path, "SELECT source_number, target_number FROM v_order_links") == [("WC-1", None)]
    assert query(path, "SELECT source_number FROM v_sync_operations") == [("WC-1",)]
    assert query(path, "SELECT count(*) FROM orders") == [(1,)]


def test_the_function_replaces_all_three_or_nothing_on_a_plain_connection(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    mirror.ensure_schema()
    with duckdb.connect(str(mirror.path)) as con:
        write_sync_state(con, [LINK], [OPERATION], [CONFLICT])
        with pytest.raises(TypeError):  # Arrow refuses a time given as text, before anything is written
            write_sync_state(con, [{**LINK, "created_at": "2024-05-01"}], [], [])
        # The last table fails after the first two were replaced: the transaction takes them back.
        con.execute("DROP TABLE sync_conflicts")
        with pytest.raises(duckdb.CatalogException):
            write_sync_state(con, [], [], [CONFLICT])
        assert con.execute("SELECT count(*) FROM sync_links").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM sync_operations").fetchone() == (1,)


def registered(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT view_name FROM duckdb_views() WHERE temporary AND view_name LIKE 'b_sync%'")
    return {name for (name,) in rows.fetchall()}


def test_a_session_keeps_no_registered_rows_after_a_write_or_a_failed_one(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    with mirror.session():
        mirror.write(batch_of(order("1", shop="wc1")), now=T0)
        mirror.write_sync_state([LINK], [OPERATION], [CONFLICT])
        with mirror.connect() as con:
            assert registered(con) == set()
            con.execute("DROP TABLE sync_conflicts")
        # The database's own error comes out, not one about the aborted transaction.
        with pytest.raises(duckdb.CatalogException, match="sync_conflicts"):
            mirror.write_sync_state([], [], [])
        with mirror.connect() as con:
            assert registered(con) == set()
            assert con.execute("SELECT count(*) FROM sync_links").fetchone() == (1,)
            for statement in sync_create_statements():
                con.execute(statement)
        mirror.write_sync_state([LINK], [], [])
    assert query(mirror.path, "SELECT source_status FROM v_order_links") == [("pending",)]


def test_a_mirror_from_before_total_difference_gains_the_column_and_keeps_its_links(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE sync_links (source_shop VARCHAR, source_order_id VARCHAR, target_shop VARCHAR,"
            " target_order_id VARCHAR, created_at TIMESTAMPTZ)"
        )
        con.execute("INSERT INTO sync_links VALUES ('wc1', '1', 'woo1', '501', now())")
    mirror = Mirror(path)
    mirror.ensure_schema()
    assert query(path, "SELECT source_order_id, total_difference FROM sync_links") == [("1", None)]
    mirror.write_sync_state([LINK], [], [])
    assert query(path, "SELECT total_difference FROM sync_links") == [(Decimal("1.2300"),)]
