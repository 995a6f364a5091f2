"""Opening the state database and keeping its schema where this version of ordersync expects it.

Migrations are Alembic's, shipped inside the package, so ``ordersync db upgrade`` works from an
installed wheel with no ``alembic.ini``. Runs refuse a store whose revision is not the head, naming
both revisions and the command that fixes it, instead of failing later on a missing column.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from ordersync.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


class StateNotReadyError(ConfigError):
    """The state store's schema is not the one this version needs; ``ordersync db upgrade`` fixes it."""


def _alembic_config(connection: Connection | None = None) -> Config:
    # Alembic is imported when a revision is read or applied, not by every run that imports this.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "the package ships at least one migration"
    return head


class StateStore:
    """The state database behind one SQLAlchemy engine; ``shown`` is its URL without a password."""

    def __init__(self, url: str):
        parsed = make_url(url)
        self.shown = parsed.render_as_string(hide_password=True)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(parsed, pool_pre_ping=True)
        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def dispose(self) -> None:
        self.engine.dispose()

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def upgrade(self, revision: str = "head") -> tuple[str | None, str | None]:
        """Apply migrations up to ``revision``; returns (before, after)."""
        from alembic import command

        before = self.current_revision()
        with self.engine.begin() as connection:
            command.upgrade(_alembic_config(connection), revision)
        return before, self.current_revision()

    def require_current(self) -> None:
        current, head = self.current_revision(), head_revision()
        if current != head:
            at = f"revision {current}" if current else "no revision (an empty or new database)"
            raise StateNotReadyError(
                f"state store {self.shown} is at {at}; this ordersync needs revision {head}: "
                "run `ordersync db upgrade` first"
            )


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    """WAL lets a status query read while a run writes; foreign keys on, as PostgreSQL has them."""
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def check_url(url: str) -> str:
    """A config-time check: a URL SQLAlchemy can parse, with a driver this install has. Messages never
    repeat the URL, which may hold a password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(
            "cannot be parsed as a database URL (dialect+driver://user:password@host/db)"
        ) from None
    try:
        parsed.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError):
        raise ValueError(f"no database driver for {parsed.drivername!r} in this install") from None
    return url
