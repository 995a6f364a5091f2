"""Writes batches into the DuckDB file, holding it open only while writing.

An order is replaced only when its content hash changed, so re-running a backfill over unchanged
orders leaves the file's contents the same (``loaded_at`` included). Each batch is one transaction: a
crash leaves the previous batch whole and this one absent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import structlog

from ordersync.errors import MirrorLockedError
from ordersync.mirror.batch import Batch
from ordersync.mirror.schema import ORDER_TABLES, create_statements
from ordersync.mirror.views import create_view_statements

log = structlog.get_logger("ordersync.mirror")

_KEY_JOIN = "t.platform = c.platform AND t.shop = c.shop AND t.order_id = c.order_id"


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
        memory_limit: str = "48MB",
        checkpoint_threshold: str = "128MB",
    ):
        self.path = Path(path)
        self.lock_wait = lock_wait
        self.memory_limit = memory_limit
        self.checkpoint_threshold = checkpoint_threshold
        self._ready = False
        self._session: duckdb.DuckDBPyConnection | None = None

    @contextmanager
    def session(self) -> Iterator[Mirror]:
        """Keep the file open for a whole run: each batch still commits on its own, but the file is
        checkpointed once at the end instead of after every batch (which costs more than the writes)."""
        if self._session is not None:
            yield self
            return
        con = self._open(read_only=False)
        con.execute(f"SET memory_limit = '{self.memory_limit}'")
        # Each checkpoint recompresses the partly filled last row group of every table, so frequent
        # checkpoints make a long backfill quadratic; rare ones keep writes flat as the file grows.
        con.execute(f"SET checkpoint_threshold = '{self.checkpoint_threshold}'")
        # Raw payloads are kilobytes of JSON each; DuckDB's default string analysis (dictionary, FSST)
        # made checkpoints cost three times the inserts. zstd compresses JSON well and fast.
        con.execute("SET force_compression = 'zstd'")
        self._session = con
        try:
            yield self
        finally:
            self._session = None
            con.close()

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
        """Open the file, waiting a while if an analyst's session holds it."""
        deadline = time.monotonic() + self.lock_wait
        delay = 0.1
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    if "lock" in str(exc).lower():
                        raise MirrorLockedError(
                            f"the DuckDB file {self.path} is held by another process for more than "
                            f"{self.lock_wait:.0f}s; close other sessions on it and run again"
                        ) from None
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        return con

    def ensure_schema(self) -> None:
        if self._ready:
            return
        if self._session is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as con:
            for statement in create_statements():
                con.execute(statement)
            for statement in create_view_statements():
                con.execute(statement)
        self._ready = True

    def write(self, batch: Batch, now: datetime | None = None) -> WriteResult:
        """Upsert a batch: new or changed orders replace all their rows; unchanged ones are left alone."""
        self.ensure_schema()
        now = now or datetime.now(UTC)
        tables, quarantine = batch.tables(now)
        with self.connect() as con:
            con.begin()
            try:
                con.register("b_orders", tables["orders"])
                con.execute(
                    """
                    CREATE OR REPLACE TEMP TABLE _changed AS
                    SELECT b.platform, b.shop, b.order_id, o.order_id IS NOT NULL AS existed FROM b_orders b
                    LEFT JOIN orders o
                      ON o.platform = b.platform AND o.shop = b.shop AND o.order_id = b.order_id
                    WHERE o.content_hash IS DISTINCT FROM b.content_hash
                    """
                )
                changed, existed = con.execute(
                    "SELECT count(*), count(*) FILTER (existed) FROM _changed"
                ).fetchall()[0]
                for table in ORDER_TABLES if changed else ():
                    if existed:
                        # Only orders already in the mirror have rows to replace; a backfill of new orders
                        # skips these scans, which would otherwise grow with the mirror.
                        con.execute(f"DELETE FROM {table} t USING _changed c WHERE c.existed AND {_KEY_JOIN}")
                    con.register(f"b_{table}", tables[table])
                    where = (
                        ""
                        if changed == batch.order_count
                        else (f" WHERE EXISTS (SELECT 1 FROM _changed c WHERE {_KEY_JOIN})")
                    )
                    con.execute(f"INSERT INTO {table} BY NAME SELECT t.* FROM b_{table} t{where}")
                # An order that maps now leaves the quarantine; a newly bad record enters it once.
                con.execute(
                    "DELETE FROM quarantine q USING b_orders b "
                    "WHERE q.platform = b.platform AND q.shop = b.shop AND q.record_id = b.order_id"
                )
                if quarantine.num_rows:
                    con.register("b_quarantine", quarantine)
                    con.execute(
                        "INSERT INTO quarantine BY NAME SELECT n.* FROM b_quarantine n "
                        "WHERE NOT EXISTS ("
                        " SELECT 1 FROM quarantine q WHERE q.platform = n.platform AND q.shop = n.shop"
                        " AND q.record_id IS NOT DISTINCT FROM n.record_id"
                        " AND q.content_hash = n.content_hash)"
                    )
                con.commit()
            except BaseException:
                con.rollback()
                raise
        return WriteResult(
            written=changed, unchanged=batch.order_count - changed, quarantined=batch.quarantined
        )
