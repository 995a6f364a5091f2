"""The mirror as a DuckLake: a catalog (SQLite or PostgreSQL) plus Parquet files, written by several
daemons at once while analysts read it.

Why a subclass and not a second writer: every table, view, upsert and event is the same SQL; only
where the data lives differs. Each connection is an in-memory DuckDB that attaches the lake and makes
it the default catalog, so the statements the file mirror runs run here unchanged. What differs:

- A lake declares no primary keys (DuckLake refuses them); the upsert keeps one row per order anyway.
- Writers do not wait for a file lock. Each transaction reads a snapshot and commits a new one; when
  another writer committed first, DuckLake refuses the commit and the whole transaction is run again
  (``_atomic``). One run per shop at a time (the shop lease) means a retry never meets its own rows.
- A reader attaches ``READ_ONLY``: it never blocks a writer and is never blocked, and it can read an
  older snapshot (``AT (VERSION => n)``).

The ``ducklake`` extension comes from DuckDB's extension repository (``INSTALL ducklake``, which
DuckDB does by itself on first use where it can reach the internet), or from the ``duckdb-ext-*``
packages on PyPI, whose bundled files are used when installed (see the README's DuckLake section).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import structlog

from ordersync.errors import MirrorError
from ordersync.mirror.dictionary import pending_comments
from ordersync.mirror.schema import create_statements, sql_text
from ordersync.mirror.store import Mirror, _identify, _meta, _migrate_meanings, _set_meta
from ordersync.mirror.sync_state import sync_create_statements
from ordersync.mirror.views import create_view_statements

log = structlog.get_logger("ordersync.mirror")
T = TypeVar("T")

ALIAS = "lake"
"""The name the lake is attached under; analysts' SQL and maintenance calls name it."""
_PASSWORD = re.compile(r"(password\s*=\s*)\S+", re.IGNORECASE)
RETRY_FOR = 120.0
"""Seconds a transaction keeps being retried while other writers commit first."""


def bundled_extensions() -> str | None:
    """The extension folder of the ``duckdb-ext-*`` wheels for this DuckDB, if they are installed:
    laid out as DuckDB's own (``v1.4.4/linux_amd64/ducklake.duckdb_extension``), so DuckDB loads from
    it with no download."""
    spec = importlib.util.find_spec("duckdb_ext")
    for base in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(base) / "extensions"
        if (folder / f"v{duckdb.__version__}").is_dir():
            return str(folder)
    return None


def _load(con: duckdb.DuckDBPyConnection, extension: str) -> None:
    try:
        con.execute(f"LOAD {extension}")
        return
    except duckdb.Error:
        pass
    try:
        con.execute(f"INSTALL {extension}")
        con.execute(f"LOAD {extension}")
    except duckdb.Error as exc:
        raise MirrorError(
            f"mirror.kind ducklake needs DuckDB's {extension} extension, which DuckDB {duckdb.__version__}"
            f" could neither load nor install ({str(exc).splitlines()[0]}); see the README's DuckLake"
            " section for installing it"
        ) from None


def _conflict(exc: duckdb.Error) -> bool:
    """Another writer committed first, or the SQLite catalog was busy: the transaction can be run again."""
    text = str(exc).lower()
    return isinstance(exc, duckdb.TransactionException) or "database is locked" in text or "conflict" in text


class LakeMirror(Mirror):
    def __init__(
        self,
        path: Path,
        *,
        catalog: str | None = None,
        data_path: str,
        lock_wait: float = 60.0,
        memory_limit: str = "32MB",
        threads: int = 1,
        personal_data: str = "keep",
    ):
        super().__init__(
            path, lock_wait=lock_wait, memory_limit=memory_limit, threads=threads, personal_data=personal_data
        )
        self.catalog = catalog
        """A PostgreSQL catalog ('postgres:<libpq string>', a secret: it may hold a password), or None
        for a SQLite catalog at ``path``."""
        self.data_path = data_path

    @property
    def shown(self) -> str:
        """The lake as errors and logs name it, without the catalog's password."""
        return f"DuckLake {self.path}" if self.catalog is None else "DuckLake on its PostgreSQL catalog"

    def attach_sql(self, *, read_only: bool, catalog: str | None = None) -> str:
        """The ATTACH statement; ``catalog`` overrides the secret one (an analyst's copy leaves the
        password to PGPASSWORD)."""
        source = f"sqlite:{self.path}" if self.catalog is None else (catalog or self.catalog)
        options = [f"DATA_PATH {sql_text(self.data_path)}"]
        if read_only:
            options.append("READ_ONLY")
        if self.catalog is None:
            options.append("META_BUSY_TIMEOUT 10000")  # a SQLite catalog is busy while another commits
        return f"ATTACH {sql_text('ducklake:' + source)} AS {ALIAS} ({', '.join(options)})"

    def exists(self) -> bool:
        return self.catalog is not None or self.path.exists()

    def _open(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        folder = bundled_extensions()
        con = duckdb.connect(config={"extension_directory": folder} if folder else {})
        try:
            _load(con, "ducklake")
            _load(con, "sqlite" if self.catalog is None else "postgres")
            if "://" in self.data_path:
                _load(con, "httpfs")  # s3://, gcs://, https:// data files
            if self.catalog is None and not self.path.exists() and not read_only:
                _wal_catalog(self.path)
            if "://" not in self.data_path:
                Path(self.data_path).mkdir(parents=True, exist_ok=True)
            self._attach(con, read_only=read_only)
            con.execute(f"USE {ALIAS}")
            return con
        except BaseException:
            con.close()
            raise

    def _cursor(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """A cursor starts in DuckDB's default catalog, not the lake the connection uses."""
        cursor = con.cursor()
        cursor.execute(f"USE {ALIAS}")
        return cursor

    def _attach(self, con: duckdb.DuckDBPyConnection, *, read_only: bool) -> None:
        """Attach, retrying while another process initialises the same new catalog."""
        deadline = time.monotonic() + self.lock_wait
        while True:
            try:
                con.execute(self.attach_sql(read_only=read_only))
                return
            except duckdb.Error as exc:
                racing = _conflict(exc) or "unique" in str(exc).lower()  # two first attaches at once
                if not racing or time.monotonic() > deadline:
                    raise MirrorError(f"cannot open the {self.shown}: {self._redacted(exc)}") from None
                time.sleep(random.uniform(0.05, 0.3))

    def _redacted(self, exc: BaseException) -> str:
        """The error's first line without the catalog string or any password DuckDB quoted from it."""
        text = str(exc).splitlines()[0]
        if self.catalog:
            text = text.replace(self.catalog, "<catalog>")
        return _PASSWORD.sub(r"\1***", text)

    def _create_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        """The file mirror's schema without keys, in one transaction so a daemon starting beside another
        either makes all of it or retries and finds it made."""

        statements = [*create_statements(keys=False), *sync_create_statements(), *create_view_statements()]
        digest = hashlib.sha256("\n".join(statements).encode()).hexdigest()
        if self._schema_digest(con) == digest:
            return  # made by this version already: a DDL commit per open would be a snapshot each time

        def work(con: duckdb.DuckDBPyConnection) -> None:
            for statement in statements:
                con.execute(statement)
            _migrate_meanings(con)
            _identify(con)
            for statement in pending_comments(con, view_columns=False):
                con.execute(statement)
            _set_meta(con, "schema", digest)

        self._retrying(con, work)

    @staticmethod
    def _schema_digest(con: duckdb.DuckDBPyConnection) -> str | None:
        made = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()"
            " AND table_name = 'mirror_meta'"
        ).fetchone()
        return _meta(con, "schema") if made and made[0] else None

    def _renew(self) -> None:
        """DuckDB invalidates a database after an internal error; DuckLake 1.4.4 raises one now and
        then when another process commits while this one plans a query (its SQLite catalog is read in
        several statements). The session's connection is then opened again."""
        if self._session is not None:
            with contextlib.suppress(duckdb.Error):
                self._session.close()
            self._session = self._open_session()

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            self.ensure_schema()
            with self.connect() as con:
                yield con

    def _atomic(self, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        return self._again(lambda: self._committed(work), "write")

    def read(self, work: Callable[[duckdb.DuckDBPyConnection], T], empty: T) -> T:
        return self._again(lambda: super(LakeMirror, self).read(work, empty), "read")

    def _committed(self, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        with self._transaction() as con:
            return self._retrying(con, work)

    def _again(self, attempt: Callable[[], T], what: str) -> T:
        """``attempt``, repeated on a fresh connection after an internal error (see ``_renew``)."""
        for tries in range(1, 6):
            try:
                return attempt()
            except duckdb.Error as exc:
                if not _broken(exc) or tries == 5:
                    raise
                log.warning("mirror.reconnect", lake=self.shown, during=what, error=self._redacted(exc))
                with self._lock:
                    self._renew()
                time.sleep(random.uniform(0.05, 0.2 * tries))
        raise AssertionError("unreachable")

    def _retrying(self, con: duckdb.DuckDBPyConnection, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``work`` in a transaction until it commits: a commit refused because another writer
        committed first is run again on the new snapshot, with a growing random pause."""
        deadline, attempt = time.monotonic() + RETRY_FOR, 0
        while True:
            con.begin()
            try:
                result = work(con)
                con.commit()
                return result
            except duckdb.Error as exc:
                _rollback(con)
                attempt += 1
                if not _conflict(exc) or time.monotonic() > deadline:
                    raise
                if attempt % 10 == 0:
                    log.warning(
                        "mirror.commit_retried", lake=self.shown, attempts=attempt, error=self._redacted(exc)
                    )
                time.sleep(random.uniform(0, min(0.02 * 2**attempt, 1.0)))
            except BaseException:
                _rollback(con)
                raise

    def snapshots(self) -> list[dict[str, Any]]:
        """The lake's snapshots, oldest first: what an analyst can read ``AT (VERSION => id)``."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                f"SELECT snapshot_id, snapshot_time, changes FROM ducklake_snapshots('{ALIAS}') ORDER BY 1"
            ).fetchall()
        return [{"snapshot_id": r[0], "snapshot_time": r[1], "changes": r[2]} for r in rows]

    def maintain(self, keep: str) -> dict[str, int]:
        """Merge small files, expire snapshots older than ``keep`` ('7 days') and delete the files no
        remaining snapshot reads. Each run of a sync adds small files; without this a lake grows a file
        per batch and per table forever."""
        self.ensure_schema()
        since = f"now() - INTERVAL '{keep}'"
        calls = [
            f"CALL ducklake_merge_adjacent_files('{ALIAS}')",
            f"CALL ducklake_expire_snapshots('{ALIAS}', older_than => {since})",
            f"CALL ducklake_cleanup_old_files('{ALIAS}', older_than => {since})",
        ]
        with self._lock, self.connect() as con:
            # Each its own transaction, retried like a write when a writer commits first.
            _, expired, deleted = (
                self._retrying(con, lambda c, sql=sql: c.execute(sql).fetchall()) for sql in calls
            )
        done = {"snapshots_expired": len(expired), "files_deleted": len(deleted)}
        log.info("mirror.maintained", lake=self.shown, **done)
        return done


def _broken(exc: duckdb.Error) -> bool:
    """An internal error, or the invalidated database it leaves: the connection must be replaced."""
    text = str(exc)
    return (
        isinstance(exc, duckdb.InternalException | duckdb.FatalException)
        or "INTERNAL Error" in text
        or ("invalidated" in text)
    )


def without_password(catalog: str) -> str:
    """A libpq catalog string with its password left out, for printing."""
    return " ".join(part for part in catalog.split() if not part.lower().startswith("password="))


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):  # a failed commit has already ended the transaction
        con.rollback()


def _wal_catalog(path: Path) -> None:
    """Make the SQLite catalog in WAL mode before DuckLake first opens it: readers then never wait for
    a writer, and writers wait for each other only while a commit is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()
