"""A state store per test, on SQLite always and on PostgreSQL when ``ORDERSYNC_TEST_POSTGRES_URL``
names a database (``.ci/run`` starts one)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ordersync.state.store import StateStore
from ordersync.state.tables import metadata

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("ORDERSYNC_TEST_POSTGRES_URL") else [])


def fresh_store(backend: str, tmp_path: Path) -> StateStore:
    if backend == "sqlite":
        return StateStore(f"sqlite:///{tmp_path / 'state' / 'state.db'}")
    state = StateStore(os.environ["ORDERSYNC_TEST_POSTGRES_URL"])
    with state.engine.begin() as connection:  # a clean database for each test
        metadata.drop_all(connection)
        connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    return state


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    state = fresh_store(request.param, tmp_path)
    yield state
    state.dispose()


@pytest.fixture(params=BACKENDS)
def ready_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    state = fresh_store(request.param, tmp_path)
    state.upgrade()
    yield state
    state.dispose()
