"""Writes batches into the DuckDB file, holding it open only while writing.

An order is replaced only when its content hash changed, so re-running a backfill over unchanged
orders leaves the file's contents the same (``loaded_at`` included). Each batch is one transaction: a
crash leaves the previous batch whole and this one absent.

Orders are rewritten whole, so their history is kept apart in ``order_events``: one row each time a
write or a presence check sees an order appear, change status, payment status or money, vanish from
the shop's listing or come back. Orders that vanish are marked (``missing_since``), never deleted.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
import structlog

from ordersync.errors import MirrorError, MirrorLockedError
from ordersync.mirror.batch import Batch
from ordersync.mirror.completion import fill_completed_at
from ordersync.mirror.dictionary import pending_comments
from ordersync.mirror.privacy import MODES, salt_for, scrub
from ordersync.mirror.schema import (
    EVENT_FIELDS,
    KEYED,
    ORDER_EVENTS,
    ORDER_TABLES,
    PRODUCT_MAP,
    arrow_schema,
    create_statements,
)
from ordersync.mirror.sync_state import replace_sync_state, sync_create_statements, sync_state_tables
from ordersync.mirror.views import create_view_statements

log = structlog.get_logger("ordersync.mirror")
T = TypeVar("T")

_HOLDER = re.compile(r"held in (?P<program>.+?) \(PID (?P<pid>\d+)\)(?: by user (?P<user>\S+))?")


def _lock_holder(message: str) -> str:
    """Who holds the file, from DuckDB's lock error ("Conflicting lock is held in /usr/bin/python3
    (PID 4242) by user ana"), or "another process" when it does not say."""
    found = _HOLDER.search(message)
    if found is None:
        return "another process"
    user = f", user {found['user'].rstrip('.')}" if found["user"] else ""
    return f"process {found['pid']} ({found['program']}{user})"


def _cause(message: str) -> str:
    """DuckDB's IO error without its prefix: 'Cannot open file ...: Permission denied'."""
    return message.removeprefix("IO Error: ").strip()


_KEY_JOIN = "t.platform = c.platform AND t.shop = c.shop AND t.order_id = c.order_id"
_EVENT_COLUMNS = ", ".join(name for name, _ in ORDER_EVENTS)
# What an event copies from the row it is made of: all its columns but the key, observed_at and kind.
_EVENT_DETAIL = ", ".join(
    name for name, _ in ORDER_EVENTS if name not in ("platform", "shop", "order_id", "observed_at", "kind")
)
_FIELD_CHANGED = " OR ".join(f"o.{f} IS DISTINCT FROM b.{f}" for f in EVENT_FIELDS)
_BEFORE_AFTER = ", ".join(f"o.{f} AS {f}_before, b.{f}" for f in EVENT_FIELDS)
_SAME_AS_BEFORE = ", ".join(f"{f} AS {f}_before, {f}" for f in EVENT_FIELDS)

_path_locks: dict[Path, threading.RLock] = {}
_path_locks_guard = threading.Lock()


def _path_lock(path: Path) -> threading.RLock:
    """One lock per file for the whole process: a daemon running two shops holds two Mirror objects on
    one file, and DuckDB shares the database between their connections, so their writes must take turns."""
    key = path.resolve()
    with _path_locks_guard:
        return _path_locks.setdefault(key, threading.RLock())


def _meta(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    row = con.execute("SELECT value FROM mirror_meta WHERE key = ?", [key]).fetchone()
    return None if row is None else str(row[0])


def _set_meta(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    con.execute("DELETE FROM mirror_meta WHERE key = ?", [key])
    con.execute("INSERT INTO mirror_meta VALUES (?, ?, now())", [key, value])


def _identify(con: duckdb.DuckDBPyConnection) -> None:
    """Give a new mirror its id: the state store names the mirror that holds a shop's versions, so a
    mirror deleted, replaced or restored from a copy is known for one that must be refilled."""
    if _meta(con, "id") is None:
        _set_meta(con, "id", uuid.uuid4().hex)


def _declare_keys(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Give a file made before the keys were declared its primary keys, once. Building the index over
    a large table needs more memory than a run's cap (1,000,000 orders: under 256 MB), so it may take
    up to 1 GB; a file whose rows break a key (or that still does not fit) keeps working without it,
    with the reason in mirror_meta and in the log each time the file is opened."""
    declared = {
        table
        for (table,) in con.execute(
            "SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'"
        ).fetchall()
    }
    for table, key in KEYED.items():
        if table in declared:
            continue
        failed = _meta(con, f"key:{table}")
        if failed is not None:
            log.warning("mirror.key_not_declared", path=str(path), table=table, error=failed)
            continue
        limit = con.execute("SELECT current_setting('memory_limit')").fetchone()
        try:
            con.execute("SET memory_limit = '1GB'")
            con.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({', '.join(key)})")
        except duckdb.Error as exc:
            reason = str(exc).splitlines()[0]
            log.warning("mirror.key_not_declared", path=str(path), table=table, error=reason)
            _set_meta(con, f"key:{table}", reason)
        finally:
            if limit is not None:
                con.execute(f"SET memory_limit = '{limit[0]}'")


def _migrate_meanings(con: duckdb.DuckDBPyConnection) -> None:
    """Rows written before a column's meaning was made one on every platform, brought to it once.

    ``paid_total`` on WooCommerce was the gross total once paid and NULL when unpaid; it is now net of
    refunds and 0 when nothing was paid. A WooCommerce incremental sync re-reads only orders that
    changed, so the old rows would otherwise keep the old meaning until a backfill."""
    if _meta(con, "paid_total") == "net":
        return
    con.execute(
        "UPDATE orders SET paid_total = CASE"
        " WHEN paid_total IS NULL AND refunded_total = 0 THEN 0"
        " WHEN paid_total IS NULL THEN greatest(total - refunded_total, 0)"
        " ELSE greatest(paid_total - refunded_total, 0) END"
        " WHERE platform = 'woocommerce'"
    )
    _set_meta(con, "paid_total", "net")


def _aware(now: datetime | None) -> datetime:
    """The write's time; a naive one would be read as local time by TIMESTAMPTZ columns."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError(f"expected an aware datetime, got naive {now.isoformat()}")
    return now


@dataclass(frozen=True)
class WriteResult:
    written: int
    unchanged: int
    quarantined: int


class Mirror:
    def __init__(
        self,
        path: Path,
        *,
        lock_wait: float = 60.0,
        memory_limit: str = "32MB",
        checkpoint_threshold: str = "128MB",
        threads: int = 1,
        personal_data: str = "keep",
    ):
        self.path = Path(path)
        self.lock_wait = lock_wait
        self.memory_limit = memory_limit
        self.checkpoint_threshold = checkpoint_threshold
        self.threads = threads
        if personal_data not in MODES:
            raise ValueError(f"personal_data {personal_data!r}: use one of {', '.join(MODES)}")
        self.personal_data = personal_data
        """keep, hash or drop: e-mails, phones, IP addresses and raw payloads (``privacy.py``)."""
        self._ready = False
        self._session: duckdb.DuckDBPyConnection | None = None
        self._lock = _path_lock(self.path)

    @contextmanager
    def session(self) -> Iterator[Mirror]:
        """Keep the file open for a whole run: each batch still commits on its own, but the file is
        checkpointed once at the end instead of after every batch (which costs more than the writes)."""
        if self._session is not None:
            yield self
            return
        self._session = self._open_session()
        try:
            yield self
        finally:
            # The one open now: a DuckLake may have replaced the first after an internal error.
            con, self._session = self._session, None
            con.close()

    def _open_session(self) -> duckdb.DuckDBPyConnection:
        """The run's read-write connection with the run's settings."""
        con = self._open(read_only=False)
        con.execute(f"SET memory_limit = '{self.memory_limit}'")
        # A run's writes are many small inserts: DuckDB's worker threads cost more to coordinate than
        # they save (one thread wrote 20,000 orders with 26 % less CPU and 27 % less time than two).
        con.execute(f"SET threads = {int(self.threads)}")
        # Each checkpoint recompresses the partly filled last row group of every table, so frequent
        # checkpoints make a long backfill quadratic; rare ones keep writes flat as the file grows.
        con.execute(f"SET checkpoint_threshold = '{self.checkpoint_threshold}'")
        # Raw payloads are kilobytes of JSON each; DuckDB's default string analysis (dictionary, FSST)
        # made checkpoints cost three times the inserts. zstd compresses JSON well and fast.
        con.execute("SET force_compression = 'zstd'")
        return con

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """The run's open connection, or the file opened just for this call."""
        if self._session is not None and not read_only:
            yield self._session
            return
        con = self._open(read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    def _open(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting a while (and saying so, naming the holder) if another process holds
        it; any other failure is one line naming the file and the cause."""
        deadline = time.monotonic() + self.lock_wait
        delay, said = 0.1, 0.0
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                text = str(exc)
                if "lock" not in text.lower():
                    raise MirrorError(f"cannot open the mirror {self.path}: {_cause(text)}") from None
                holder = _lock_holder(text)
                if time.monotonic() >= deadline:
                    raise MirrorLockedError(
                        f"the DuckDB file {self.path} is held by {holder} for more than "
                        f"{self.lock_wait:.0f}s; close its session on the file and run again"
                    ) from None
                if time.monotonic() - said >= 10:
                    log.warning(
                        "mirror.locked", path=str(self.path), holder=holder, waiting_up_to=self.lock_wait
                    )
                    said = time.monotonic()
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction, this file's writes taking turns: committed whole or rolled back."""
        with self._lock:
            self.ensure_schema()
            with self.connect() as con:
                con.begin()
                try:
                    yield con
                    con.commit()
                except BaseException:
                    con.rollback()
                    raise

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A connection for reads, or None when the file does not exist (reads must not create it).

        Within a session, a cursor: its own transaction, so a read from another thread neither joins
        a write in progress nor sees it half done. Outside one, a read-write connection, because a
        read-only one is refused while another Mirror in this process holds the file read-write."""
        if self._session is None and not self.exists():
            yield None
            return
        self.ensure_schema()  # an older file gains the columns the reads filter on
        if self._session is not None:
            cursor = self._cursor(self._session)
            try:
                yield cursor
            finally:
                cursor.close()
            return
        with self.connect() as con:
            yield con

    def _cursor(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        return con.cursor()

    def ensure_schema(self) -> None:
        """Create what is missing, upgrading an older file in place; once per Mirror."""
        if self._ready:
            return
        with self._lock:
            if self._session is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.connect() as con:
                self._create_schema(con)
            self._ready = True

    def exists(self) -> bool:
        """Whether the mirror has been made (reads must not create it)."""
        return self.path.exists()

    def _create_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        # The sync tables before the views, which read them.
        for statement in [*create_statements(), *sync_create_statements()]:
            con.execute(statement)
        for statement in create_view_statements():
            con.execute(statement)
        _migrate_meanings(con)
        _identify(con)
        _declare_keys(con, self.path)
        for statement in pending_comments(con):  # the data dictionary, once per file
            con.execute(statement)

    def read(self, work: Callable[[duckdb.DuckDBPyConnection], T], empty: T) -> T:
        """``work`` on a reading connection, or ``empty`` when the mirror does not exist yet. A
        DuckLake runs it again on a fresh connection if a concurrent commit upset the read."""
        with self.reader() as con:
            return empty if con is None else work(con)

    def _atomic(self, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """``work`` in one write transaction, committed whole or rolled back. A DuckLake retries it
        when another writer committed first; the file never needs to."""
        with self._transaction() as con:
            return work(con)

    def write(
        self,
        batch: Batch,
        now: datetime | None = None,
        *,
        run_id: int | None = None,
        numbered: tuple[str, str, int] | None = None,
    ) -> WriteResult:
        """Upsert a batch: new or changed orders replace all their rows; unchanged ones are left alone.

        Events, in the same transaction: 'new' for an order not in the mirror, 'changed' when a
        rewritten order's status, payment status, total or refunded total differs from its stored row
        (another change, such as a new comment, is no event).
        ``numbered``: (platform, shop, seq), the state store's number for the batch, recorded in
        ``mirror_batches`` in the same transaction (how far this mirror follows the state).
        An order marked missing that shows up in a batch is present again: its missing_since is
        cleared and it gets one 'reappeared' event (instead of 'changed'), carrying any change of
        those fields in its before/after columns.
        """
        now = _aware(now)
        tables, quarantine = batch.tables(now)
        if run_id is not None and tables["orders"].num_rows:
            # Lineage: the run that wrote each order (runs.run_id).
            orders = tables["orders"]
            tables = {
                **tables,
                "orders": orders.append_column("run_id", pa.array([run_id] * orders.num_rows, pa.int64())),
            }
        if self.personal_data != "keep":
            salt = salt_for(self.path) if self.personal_data == "hash" else None
            tables = scrub(tables, self.personal_data, salt)
            quarantine = scrub({"quarantine": quarantine}, self.personal_data, salt)["quarantine"]

        def work(con: duckdb.DuckDBPyConnection) -> WriteResult:
            result = self._write(con, batch, tables, quarantine, now)
            if numbered is not None:
                con.execute(
                    "INSERT INTO mirror_batches VALUES (?, ?, ?, ?, ?, ?)",
                    [*numbered, run_id, batch.order_count, now],
                )
            return result

        return self._atomic(work)

    def _write(
        self,
        con: duckdb.DuckDBPyConnection,
        batch: Batch,
        tables: dict[str, pa.Table],
        quarantine: pa.Table,
        now: datetime,
    ) -> WriteResult:
        con.register("b_orders", tables["orders"])
        if batch.fresh and batch.order_count:
            return self._insert_new(con, batch, tables, quarantine, now)
        # _changed: the batch's orders this write touches. `rewrite`: the content changed, so all the
        # order's rows are replaced. Unchanged orders are in it only when marked missing, to clear that.
        # This join scans the whole orders table for every batch, so it reads few columns; the events
        # fetch the stored values they need by `stored_row`, the row's id (stable within the
        # transaction until the row is deleted).
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _changed AS
            SELECT b.platform, b.shop, b.order_id, o.order_id IS NOT NULL AS existed,
                   o.content_hash IS DISTINCT FROM b.content_hash AS rewrite,
                   o.missing_since IS NOT NULL AS was_missing, o.rowid AS stored_row
            FROM b_orders b
            LEFT JOIN orders o
              ON o.platform = b.platform AND o.shop = b.shop AND o.order_id = b.order_id
            WHERE o.content_hash IS DISTINCT FROM b.content_hash OR o.missing_since IS NOT NULL
            """
        )
        touched, stored, changed, replaced = con.execute(
            "SELECT count(*), count(stored_row), count(*) FILTER (rewrite),"
            " count(*) FILTER (rewrite AND existed) FROM _changed"
        ).fetchall()[0]
        if touched:
            self._record_events(con, now, stored=stored > 0)
        if changed:
            tables = {**tables, "orders": fill_completed_at(tables["orders"], now, con if stored else None)}
        if touched > changed:
            con.execute(
                "UPDATE orders t SET missing_since = NULL"
                f" FROM _changed c WHERE NOT c.rewrite AND {_KEY_JOIN}"
            )
        for table in ORDER_TABLES if changed else ():
            if replaced:
                # Only orders already in the mirror have rows to replace; a backfill of new orders
                # skips these scans, which would otherwise grow with the mirror.
                con.execute(
                    f"DELETE FROM {table} t USING _changed c WHERE c.rewrite AND c.existed AND {_KEY_JOIN}"
                )
            con.register(f"b_{table}", tables[table])
            where = (
                ""
                if changed == batch.order_count
                else f" WHERE EXISTS (SELECT 1 FROM _changed c WHERE c.rewrite AND {_KEY_JOIN})"
            )
            con.execute(f"INSERT INTO {table} BY NAME SELECT t.* FROM b_{table} t{where}")
        # An order that maps now leaves the quarantine.
        con.execute(
            "DELETE FROM quarantine q USING b_orders b "
            "WHERE q.platform = b.platform AND q.shop = b.shop AND q.record_id = b.order_id"
        )
        self._quarantine(con, quarantine)
        return WriteResult(
            written=changed, unchanged=batch.order_count - changed, quarantined=batch.quarantined
        )

    def _insert_new(
        self,
        con: duckdb.DuckDBPyConnection,
        batch: Batch,
        tables: dict[str, pa.Table],
        quarantine: pa.Table,
        now: datetime,
    ) -> WriteResult:
        """A batch of orders the caller knows are not in the mirror (nor in its quarantine): inserted
        as they are, each with its 'new' event, with no join against what the mirror holds."""
        before_after = ", ".join(f"NULL AS {f}_before, b.{f}" for f in EVENT_FIELDS)
        con.execute(
            f"INSERT INTO order_events ({_EVENT_COLUMNS}) SELECT b.platform, b.shop, b.order_id,"
            f" ?::TIMESTAMPTZ, 'new', {before_after}, b.updated_at FROM b_orders b",
            [now],
        )
        tables = {**tables, "orders": fill_completed_at(tables["orders"], now)}
        for table in ORDER_TABLES:
            if tables[table].num_rows:
                con.register(f"b_{table}", tables[table])
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM b_{table}")
        self._quarantine(con, quarantine)
        return WriteResult(written=batch.order_count, unchanged=0, quarantined=batch.quarantined)

    @staticmethod
    def _quarantine(con: duckdb.DuckDBPyConnection, quarantine: pa.Table) -> None:
        """A newly bad record enters the quarantine once (the same payload twice is one row)."""
        if quarantine.num_rows:
            con.register("b_quarantine", quarantine)
            con.execute(
                "INSERT INTO quarantine BY NAME SELECT n.* FROM b_quarantine n "
                "WHERE NOT EXISTS ("
                " SELECT 1 FROM quarantine q WHERE q.platform = n.platform AND q.shop = n.shop"
                " AND q.record_id IS NOT DISTINCT FROM n.record_id"
                " AND q.content_hash = n.content_hash)"
            )

    def _record_events(self, con: duckdb.DuckDBPyConnection, now: datetime, *, stored: bool) -> None:
        """Events of the orders in _changed, made before their stored rows are replaced.

        The stored values are fetched by row id, which reads only those rows; with no stored row
        (a backfill of new orders) every event is 'new' and the orders table is not read at all."""
        if stored:
            kind = (
                "CASE WHEN NOT c.existed THEN 'new' WHEN c.was_missing THEN 'reappeared'"
                f" WHEN {_FIELD_CHANGED} THEN 'changed' END"
            )
            before_after, join = _BEFORE_AFTER, "LEFT JOIN orders o ON o.rowid = c.stored_row"
        else:
            kind, join = "'new'", ""
            before_after = ", ".join(f"NULL AS {f}_before, b.{f}" for f in EVENT_FIELDS)
        con.execute(
            f"""
            INSERT INTO order_events ({_EVENT_COLUMNS})
            SELECT * FROM (
                SELECT b.platform, b.shop, b.order_id, ?::TIMESTAMPTZ AS observed_at, {kind} AS kind,
                       {before_after}, b.updated_at
                FROM _changed c
                JOIN b_orders b ON b.platform = c.platform AND b.shop = c.shop AND b.order_id = c.order_id
                {join}
            ) WHERE kind IS NOT NULL
            """,
            [now],
        )

    def write_sync_state(
        self,
        links: list[dict[str, Any]],
        operations: list[dict[str, Any]],
        conflicts: list[dict[str, Any]],
    ) -> None:
        """Replace the mirror's copy of the write-back state (links, outbox operations, conflicts) in one
        transaction; the state database is the original, this copy is for analysts' views."""
        tables = sync_state_tables(links, operations, conflicts)
        self._atomic(lambda con: replace_sync_state(con, tables))

    def mark_presence(
        self, platform: str, shop: str, seen_ids: Iterable[str], now: datetime | None = None
    ) -> tuple[int, int]:
        """Mark the shop's orders absent from its listing as missing, and clear those back in it.

        Returns (newly disappeared, reappeared); each gets an event. Call it only after reading the
        shop's whole listing: an order left out of a partial one would be marked missing. Orders are
        never deleted, since a shop may hide an order for a while (or the mirror may be its only copy).
        """
        now = _aware(now)
        ids = seen_ids if isinstance(seen_ids, list) else list(seen_ids)
        # The ids go in as a registered Arrow table and are joined, not spliced into an IN list.
        seen = pa.table({"order_id": pa.array(ids, type=pa.string())})

        def work(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
            con.register("b_seen", seen)
            try:
                return self._mark_presence(con, platform, shop, now)
            finally:
                con.unregister("b_seen")  # a session would otherwise keep the ids until it ends

        gone, back = self._atomic(work)
        if gone or back:
            log.info("mirror.presence", platform=platform, shop=shop, disappeared=gone, reappeared=back)
        return gone, back

    def _mark_presence(
        self, con: duckdb.DuckDBPyConnection, platform: str, shop: str, now: datetime
    ) -> tuple[int, int]:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _presence AS
            WITH seen AS (SELECT DISTINCT order_id FROM b_seen)
            SELECT o.platform, o.shop, o.order_id,
                   CASE WHEN s.order_id IS NULL THEN 'disappeared' ELSE 'reappeared' END AS kind,
                   {_SAME_AS_BEFORE}, o.updated_at
            FROM orders o LEFT JOIN seen s ON s.order_id = o.order_id
            WHERE o.platform = $platform AND o.shop = $shop
              AND ((s.order_id IS NULL AND o.missing_since IS NULL)
                   OR (s.order_id IS NOT NULL AND o.missing_since IS NOT NULL))
            """,
            {"platform": platform, "shop": shop},
        )
        gone, back = con.execute(
            "SELECT count(*) FILTER (kind = 'disappeared'), count(*) FILTER (kind = 'reappeared')"
            " FROM _presence"
        ).fetchall()[0]
        if gone or back:
            con.execute(
                f"INSERT INTO order_events ({_EVENT_COLUMNS}) "
                f"SELECT platform, shop, order_id, $now::TIMESTAMPTZ, kind, {_EVENT_DETAIL} FROM _presence",
                {"now": now},
            )
            con.execute(
                "UPDATE orders t"
                " SET missing_since = CASE c.kind WHEN 'disappeared' THEN $now::TIMESTAMPTZ END"
                f" FROM _presence c WHERE {_KEY_JOIN}",
                {"now": now},
            )
        return gone, back

    def record_run(self, row: dict[str, object]) -> None:
        """A run's line in the file's ``runs`` table (lineage), replacing an earlier one of that id."""
        columns = ", ".join(f"${name} AS {name}" for name in row)

        def work(con: duckdb.DuckDBPyConnection) -> None:
            con.execute("DELETE FROM runs WHERE run_id = $run_id", {"run_id": row["run_id"]})
            con.execute(f"INSERT INTO runs BY NAME SELECT {columns}", row)

        self._atomic(work)

    def record_shop(
        self, row: dict[str, str], now: datetime | None = None, products: Iterable[dict[str, str | None]] = ()
    ) -> None:
        """The shop's row in ``shops`` (name, platform, API, time zone, currency, base URL), replaced,
        and its entries of the routes' product maps (``product_map``)."""
        values = {**row, "updated_at": _aware(now)}
        entries = list(products)

        def work(con: duckdb.DuckDBPyConnection) -> None:
            con.execute("DELETE FROM product_map WHERE shop = $shop", {"shop": row["shop"]})
            if entries:
                con.register("b_product_map", pa.Table.from_pylist(entries, arrow_schema(PRODUCT_MAP)))
                con.execute("INSERT INTO product_map BY NAME SELECT * FROM b_product_map")
            con.execute("DELETE FROM shops WHERE shop = $shop", {"shop": row["shop"]})
            con.execute(
                "INSERT INTO shops BY NAME SELECT $shop AS shop, $platform AS platform, $api AS api, "
                "$timezone AS timezone, $currency AS currency, $base_url AS base_url, "
                "$updated_at AS updated_at",
                values,
            )

        self._atomic(work)

    def projection(self, platform: str, shop: str) -> tuple[str | None, int, bool]:
        """(this mirror's id, the shop's last batch number here, whether it holds any of the shop):
        what tells a run whether the mirror follows the state store's versions."""

        def work(con: duckdb.DuckDBPyConnection) -> tuple[str | None, int, bool]:
            seq = con.execute(
                "SELECT coalesce(max(seq), 0) FROM mirror_batches WHERE platform = $p AND shop = $s",
                {"p": platform, "s": shop},
            ).fetchone()
            return _meta(con, "id"), int(seq[0]) if seq else 0, self._holds(con, shop)

        return self.read(work, (None, 0, False))

    @staticmethod
    def _holds(con: duckdb.DuckDBPyConnection, shop: str) -> bool:
        held = con.execute(
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM orders WHERE shop = $s LIMIT 1))"
            " + (SELECT count(*) FROM (SELECT 1 FROM quarantine WHERE shop = $s LIMIT 1))",
            {"s": shop},
        ).fetchone()
        return held is not None and held[0] > 0

    def known_hashes(self, platform: str, shop: str) -> dict[str, str]:
        """order_id -> content hash of the shop's orders and quarantined records, so a sync can skip
        mapping payloads that did not change. A quarantined record wins over the order's row: it was
        seen later (a write that maps the order clears its quarantine), so it is the current payload."""
        params = {"platform": platform, "shop": shop}

        def work(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
            orders = con.sql(
                "SELECT order_id, content_hash FROM orders WHERE platform = $platform AND shop = $shop",
                params=params,
            ).to_arrow_table()
            quarantined = con.sql(
                "SELECT record_id, arg_max(content_hash, quarantined_at) FROM quarantine"
                " WHERE platform = $platform AND shop = $shop AND record_id IS NOT NULL GROUP BY record_id",
                params=params,
            ).to_arrow_table()
            known = dict(zip(orders.column(0).to_pylist(), orders.column(1).to_pylist(), strict=True))
            known.update(
                zip(quarantined.column(0).to_pylist(), quarantined.column(1).to_pylist(), strict=True)
            )
            return known

        return self.read(work, {})

    def quarantined(self, platform: str, shop: str) -> pa.Table:
        """The shop's quarantined records as the mirror holds them (for a state store that has none,
        e.g. one created after the mirror)."""
        return self.read(
            lambda con: con.sql(
                "SELECT * FROM quarantine WHERE platform = $platform AND shop = $shop",
                params={"platform": platform, "shop": shop},
            ).to_arrow_table(),
            pa.table({}),
        )
