"""The state store: migrations that match the tables, a clear refusal before them, and constraints
that later issues rely on (one cursor per stream, one outbox row per idempotency key).

Runs on SQLite always and on PostgreSQL when ``ORDERSYNC_TEST_POSTGRES_URL`` names a database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from ordersync.cli import app
from ordersync.config import parse_settings
from ordersync.errors import ConfigError
from ordersync.state.store import StateNotReadyError, StateStore, head_revision
from ordersync.state.tables import cursors, metadata, outbox, runs

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_a_new_store_is_refused_until_upgraded_then_matches_the_tables(store: StateStore) -> None:
    with pytest.raises(StateNotReadyError, match="run `ordersync db upgrade` first") as refused:
        store.require_current()
    assert "no revision" in str(refused.value)
    assert store.upgrade() == (None, head_revision())
    store.require_current()
    assert set(inspect(store.engine).get_table_names()) >= {
        "cursors",
        "links",
        "runs",
        "quarantine",
        "outbox",
    }
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert diff == []  # the migration creates exactly what tables.py describes
    assert store.upgrade() == (head_revision(), head_revision())  # again: nothing to do


def test_constraints_later_runs_rely_on(store: StateStore) -> None:
    store.upgrade()
    with store.engine.begin() as connection:
        connection.execute(
            insert(cursors).values(shop="w", stream="orders", value={"at": "x"}, updated_at=NOW)
        )
        connection.execute(
            insert(outbox).values(
                idempotency_key="refund:w:61:1",
                shop="w",
                kind="refund",
                payload={"amount": "1.00"},
                status="pending",
                attempts=0,
                created_at=NOW,
            )
        )
        connection.execute(
            insert(runs).values(
                shop="w",
                kind="backfill",
                started_at=NOW,
                status="ok",
                fetched=3,
                loaded=3,
                unchanged=0,
                quarantined=0,
            )
        )
    for table, row in (
        (cursors, {"shop": "w", "stream": "orders", "value": {}, "updated_at": NOW}),
        (
            outbox,
            {
                "idempotency_key": "refund:w:61:1",
                "shop": "w",
                "kind": "refund",
                "payload": {},
                "status": "pending",
                "attempts": 0,
                "created_at": NOW,
            },
        ),
    ):
        with pytest.raises(IntegrityError), store.engine.begin() as connection:
            connection.execute(insert(table).values(**row))
    with store.engine.connect() as connection:
        (value,) = connection.execute(select(cursors.c.value)).one()
        (started,) = connection.execute(select(runs.c.started_at)).one()
    assert value == {"at": "x"}
    assert started.replace(tzinfo=started.tzinfo or UTC) == NOW


def test_downgrade_and_upgrade_again(store: StateStore) -> None:
    from alembic import command

    from ordersync.state.store import _alembic_config

    store.upgrade()
    with store.engine.begin() as connection:
        command.downgrade(_alembic_config(connection), "base")
    assert store.current_revision() is None
    assert store.upgrade() == (None, head_revision())


def test_state_urls_are_checked_at_config_time_without_showing_them() -> None:
    shop = {
        "name": "w",
        "platform": "woocommerce",
        "base_url": "https://s.test",
        "consumer_key": "k",
        "consumer_secret": "s",
    }
    with pytest.raises(ConfigError, match="cannot be parsed") as broken:
        parse_settings({"shops": [shop], "state": {"url": "not a url with s3cret"}})
    assert "s3cret" not in str(broken.value)
    with pytest.raises(ConfigError, match="no database driver for 'nosuchdb'") as driver:
        parse_settings({"shops": [shop], "state": {"url": "nosuchdb://u:s3cret@h/db"}})
    assert "s3cret" not in str(driver.value)
    settings = parse_settings({"shops": [shop], "state": {"url": "postgresql://u:s3cret@h/db"}})
    assert "s3cret" not in repr(settings) and "s3cret" not in StateStore("postgresql://u:s3cret@h/db").shown


def test_db_commands(tmp_path: Path) -> None:
    config = tmp_path / "sync.yaml"
    config.write_text(
        "shops: [{name: w, platform: woocommerce, base_url: 'https://s.test', consumer_key: k, "
        f"consumer_secret: s}}]\nstate: {{url: 'sqlite:///{tmp_path / 'st.db'}'}}\n"
    )
    runner = CliRunner()
    before = runner.invoke(app, ["db", "current", "--config", str(config)])
    assert before.exit_code == 1 and "needs `ordersync db upgrade`" in " ".join(before.stdout.split())
    upgraded = runner.invoke(app, ["db", "upgrade", "--config", str(config)])
    assert upgraded.exit_code == 0 and f"upgraded from (empty) to {head_revision()}" in upgraded.stdout
    after = runner.invoke(app, ["db", "current", "--config", str(config)])
    assert after.exit_code == 0 and "(current)" in after.stdout
