"""The write-back's state, copied into the mirror so analysts can see what was synced.

The connector's own record of links, outbox operations and conflicts lives in the state database
(``ordersync.state``) and is changed only there; the mirror holds a copy, replaced whole on each
write. The copy is small (thousands of rows), so replacing it is simpler and safer than an upsert:
a link or operation removed from the state cannot linger in the mirror.

Only the columns listed here are stored. An operation's payload is left out on purpose: it is what
was sent to a shop and may carry customer details; ``summary`` says what the operation did instead.
A row with a key that is not a column is refused rather than dropped, so a misspelt key fails loudly
instead of leaving a column NULL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from ordersync.mirror.schema import arrow_type, with_added_columns

SYNC_TABLES: dict[str, list[tuple[str, str]]] = {
    "sync_links": [
        ("source_shop", "VARCHAR"),
        ("source_order_id", "VARCHAR"),
        ("target_shop", "VARCHAR"),
        ("target_order_id", "VARCHAR"),
        ("created_at", "TIMESTAMPTZ"),
    ],
    "sync_operations": [
        ("id", "BIGINT"),
        ("idempotency_key", "VARCHAR"),
        ("shop", "VARCHAR"),
        ("kind", "VARCHAR"),
        ("order_id", "VARCHAR"),
        ("origin", "VARCHAR"),
        ("source_shop", "VARCHAR"),
        ("source_order_id", "VARCHAR"),
        ("status", "VARCHAR"),
        ("attempts", "INTEGER"),
        ("last_error", "VARCHAR"),
        ("result", "VARCHAR"),
        ("summary", "VARCHAR"),
        ("created_at", "TIMESTAMPTZ"),
        ("next_attempt_at", "TIMESTAMPTZ"),
        ("done_at", "TIMESTAMPTZ"),
    ],
    "sync_conflicts": [
        ("id", "BIGINT"),
        ("field", "VARCHAR"),
        ("shop_a", "VARCHAR"),
        ("order_a", "VARCHAR"),
        ("value_a", "VARCHAR"),
        ("changed_a", "TIMESTAMPTZ"),
        ("shop_b", "VARCHAR"),
        ("order_b", "VARCHAR"),
        ("value_b", "VARCHAR"),
        ("changed_b", "TIMESTAMPTZ"),
        ("policy", "VARCHAR"),
        ("winner_shop", "VARCHAR"),
        ("outcome", "VARCHAR"),
        ("detected_at", "TIMESTAMPTZ"),
    ],
}

SYNC_ADDED_COLUMNS: dict[str, list[tuple[str, str]]] = {"sync_links": [("total_difference", "DECIMAL(18,4)")]}
"""Columns added after the write-back tables were first released (see ``schema.ADDED_COLUMNS``)."""
_ADD_COLUMNS = with_added_columns(SYNC_TABLES, SYNC_ADDED_COLUMNS)
"""Table -> columns. ``sync_operations.result`` is the shop's answer as JSON text, like raw payloads."""

Row = Mapping[str, Any]


def sync_create_statements() -> list[str]:
    """IF NOT EXISTS, so a mirror file written before the write-back gains the tables on open."""
    return [
        *(
            f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(f'{c} {t}' for c, t in cols)})"
            for table, cols in SYNC_TABLES.items()
        ),
        *_ADD_COLUMNS,
    ]


def _arrow_type(sql_type: str) -> pa.DataType:
    return pa.int64() if sql_type == "BIGINT" else arrow_type(sql_type)


def _json_text(value: Any) -> str | None:
    """The state database's JSON column reads back as Python objects; the mirror stores JSON text."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()


def _arrow_table(table: str, rows: Sequence[Row]) -> pa.Table:
    columns = SYNC_TABLES[table]
    names = {name for name, _ in columns}
    times = [name for name, sql in columns if sql == "TIMESTAMPTZ"]
    for n, row in enumerate(rows):
        unknown = set(row) - names
        if unknown:
            raise ValueError(f"{table} row {n}: not a column: {', '.join(sorted(unknown))}")
        for name in times:
            value = row.get(name)
            if isinstance(value, datetime) and value.tzinfo is None:
                # Arrow would read a naive time as UTC, silently shifting a local one.
                raise ValueError(f"{table} row {n}: {name} is a naive datetime ({value.isoformat()})")
    if table == "sync_operations":
        rows = [{**row, "result": _json_text(row.get("result"))} for row in rows]
    schema = pa.schema([(name, _arrow_type(sql)) for name, sql in columns])
    return pa.Table.from_pylist(list(rows), schema=schema)


def sync_state_tables(
    links: Sequence[Row], operations: Sequence[Row], conflicts: Sequence[Row]
) -> dict[str, pa.Table]:
    """The rows as Arrow tables, checked before any transaction starts."""
    return {
        "sync_links": _arrow_table("sync_links", links),
        "sync_operations": _arrow_table("sync_operations", operations),
        "sync_conflicts": _arrow_table("sync_conflicts", conflicts),
    }


def replace_sync_state(con: duckdb.DuckDBPyConnection, tables: Mapping[str, pa.Table]) -> None:
    """Replace the tables' contents within the caller's transaction.

    Each registered table is unregistered once inserted, or a session's connection would keep its rows
    until the session ends. Not in a ``finally``: after a failed statement DuckDB refuses anything but a
    rollback (unregistering would hide the real error), and the rollback drops the registration itself.
    """
    for table, data in tables.items():
        view = f"b_{table}"
        con.register(view, data)
        con.execute(f"DELETE FROM {table}")
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {view}")
        con.unregister(view)


def write_sync_state(
    con: duckdb.DuckDBPyConnection,
    links: list[dict[str, Any]],
    operations: list[dict[str, Any]],
    conflicts: list[dict[str, Any]],
) -> None:
    """Replace the three tables' contents in one transaction of its own, so a reader sees the old copy
    or the new one, never links of one with operations of the other. The tables must exist
    (``sync_create_statements``); ``Mirror.write_sync_state`` creates them."""
    tables = sync_state_tables(links, operations, conflicts)
    con.begin()
    try:
        replace_sync_state(con, tables)
        con.commit()
    except BaseException:
        con.rollback()
        raise
