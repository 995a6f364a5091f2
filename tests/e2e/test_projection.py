"""The mirror is a projection of the state store: routing and incremental sync decide from the
state's order versions, so the mirror can be deleted, restored from an old copy or refilled halfway
and every order still reaches it once, with nothing routed twice."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from ordersync.errors import OrderSyncError
from ordersync.mirror.store import Mirror
from ordersync.state import links as state_links
from ordersync.state import outbox, versions
from ordersync.state.store import StateStore
from ordersync.sync.backfill import backfill_shop
from ordersync.sync.incremental import sync_shop
from ordersync.sync.projection import Projection
from ordersync.writeback.routing import route_shop
from tests.e2e.test_rebuild import table_rows
from tests.e2e.writeback_shops import Shops, serve_shops


@pytest.fixture
def shops(tmp_path: Path) -> Iterator[Shops]:
    yield from serve_shops(tmp_path, orders=30)


@pytest.fixture
def state(shops: Shops) -> Iterator[StateStore]:
    store = shops.store()
    shops.cycle(store)
    yield store
    store.dispose()


def _mirror(shops: Shops) -> Path:
    return shops.tmp_path / "mirror.duckdb"


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The mirror's tables. The content hash and the raw details and payload also depend on how an
    order was read (an incremental run keeps the notes it fetched beside an order, and a re-read
    order is serialised again, without PHP's escaped slashes): payloads are compared as JSON."""
    with duckdb.connect(str(path), read_only=True) as con:
        rows = table_rows(con, frozenset({"content_hash", "details", "payload"}))
        payloads = con.execute(
            "SELECT platform, shop, order_id, payload FROM raw_orders ORDER BY ALL"
        ).fetchall()
    rows["payloads"] = [(*key, orjson.loads(payload)) for *key, payload in payloads]
    return rows


def _orders(path: Path, shop: str) -> tuple[int, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        found = con.execute(
            "SELECT count(*), count(DISTINCT order_id) FROM orders WHERE shop = ?", [shop]
        ).fetchone()
    assert found is not None
    return int(found[0]), int(found[1])


def _operations(store: StateStore) -> list[tuple[str, str, str]]:
    return sorted((r.shop, r.kind, r.key) for r in outbox.rows(store, limit=10_000))


def test_routing_reads_the_state_not_the_mirror_and_a_deleted_mirror_is_refilled_the_same(
    shops: Shops, state: StateStore
) -> None:
    woo_id = shops.new_woo_order(["SKU-001", "TSHIRT-S"])
    shops.cycle(state)
    with state.engine.connect() as connection:
        wc_id = state_links.counterpart(connection, "woo", str(woo_id), "wc")
    assert wc_id is not None
    shops.cycle(state)  # the replica, extracted from WebCommander, now has its own version
    before = _tables(_mirror(shops))
    operations = _operations(state)

    # A status change in WebCommander is synced; then the mirror is deleted before routing runs.
    shops.wc.set_status(wc_id, "completed")
    shops.sync(state, "wc")
    _mirror(shops).unlink()
    settings = shops.settings()
    routed = route_shop(settings, state, settings.shop("wc"))
    assert routed.queued == 1 and not _mirror(shops).exists()
    queued = [op for op in _operations(state) if op not in operations]
    assert [(shop, kind) for shop, kind, _ in queued] == [("woo", "set_status")]

    # The next cycle refills the mirror from the shops (the state's cursors alone would bring
    # nothing) and applies the queued change; nothing is queued twice, nothing echoes back.
    shops.cycle(state)
    assert shops.woo.get(woo_id).status == "completed"
    shops.cycle(state)
    assert _operations(state) == sorted([*operations, *queued])
    after = _tables(_mirror(shops))
    assert after.keys() == before.keys()
    # The refilled mirror holds what a mirror made from scratch now holds, table by table.
    reference = _reference(shops)
    for table, rows in reference.items():
        if not table.startswith("sync_"):  # the write-back's copies, published from the state
            assert after[table] == rows, table
    for shop in ("woo", "wc"):
        total, distinct = _orders(_mirror(shops), shop)
        assert total == distinct == len(versions.known_hashes(state, _platform(shop), shop))


def _reference(shops: Shops) -> dict[str, list[tuple[Any, ...]]]:
    """Both shops backfilled into a new mirror, with no state store."""
    settings = shops.settings()
    mirror = Mirror(shops.tmp_path / "reference.duckdb")
    for name in ("woo", "wc"):
        asyncio.run(backfill_shop(settings.shop(name), settings, mirror))
    return _tables(mirror.path)


def _platform(shop: str) -> str:
    return "woocommerce" if shop == "woo" else "webcommander"


def test_a_refill_cut_short_is_finished_by_the_next_sync(shops: Shops, state: StateStore) -> None:
    """The mirror was deleted and the refill stopped after its first pages: the mirror holds part
    of the shop, which must not pass for all of it (the old check only asked whether it held any)."""
    listed = len(versions.known_hashes(state, "woocommerce", "woo"))
    assert listed >= 20
    _mirror(shops).unlink()
    config = shops.config()
    config["shops"][0]["page_size"] = 5
    config["http"] = {**config["http"], "max_retries": 0, "resumes": 0}
    from ordersync.config import parse_settings

    settings = parse_settings(config)
    shop = settings.shop("woo")
    shops.woo_app.outage(30, after=10)
    with pytest.raises(OrderSyncError):
        asyncio.run(sync_shop(shop, settings, settings.mirror.open(), state))
    held, _ = _orders(_mirror(shops), "woo")
    assert 0 < held < listed
    shops.woo_app.outage(0)
    import time

    time.sleep(0.05)
    asyncio.run(sync_shop(shop, settings, settings.mirror.open(), state))
    assert _orders(_mirror(shops), "woo") == (listed, listed)
    plan = Projection.plan(state, settings.mirror.open(), "woocommerce", "woo")
    assert plan.trusted and plan.fresh_ok


def test_an_old_copy_of_the_mirror_is_brought_up_to_date(shops: Shops, state: StateStore) -> None:
    """A mirror restored from a copy has the right id but misses the batches since: it is refilled."""
    copy = shops.tmp_path / "copy.duckdb"
    shutil.copy(_mirror(shops), copy)
    new = [shops.new_woo_order(["SKU-002"], paid=False) for _ in range(3)]
    shops.sync(state, "woo")
    shutil.copy(copy, _mirror(shops))
    with duckdb.connect(str(_mirror(shops)), read_only=True) as con:
        assert not con.execute(
            "SELECT count(*) FROM orders WHERE shop = 'woo' AND list_contains(?, order_id)",
            [[str(i) for i in new]],
        ).fetchone()[0]  # type: ignore[index]
    settings = shops.settings()
    assert not Projection.plan(state, settings.mirror.open(), "woocommerce", "woo").trusted
    shops.sync(state, "woo")
    listed = len(versions.known_hashes(state, "woocommerce", "woo"))
    assert _orders(_mirror(shops), "woo") == (listed, listed)
    with duckdb.connect(str(_mirror(shops)), read_only=True) as con:
        assert (
            con.execute(
                "SELECT count(*) FROM orders WHERE shop = 'woo' AND list_contains(?, order_id)",
                [[str(i) for i in new]],
            ).fetchone()[0]
            == 3
        )  # type: ignore[index]


def test_a_crash_between_the_mirror_and_the_state_commit_loses_and_doubles_nothing(
    shops: Shops, state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mirror committed a batch of new orders, then the process died before the state store
    recorded their versions: the next scan must not insert them again as new (the mirror declares a
    key, a lake would hold them twice) and routing must still see them."""
    new = [shops.wc.add_generated(seed=90 + n) for n in range(4)]
    real = Projection.record

    def crash(self: Projection, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed between the commits")

    monkeypatch.setattr(Projection, "record", crash)
    with pytest.raises(RuntimeError, match="between the commits"):
        shops.sync(state, "wc")
    monkeypatch.setattr(Projection, "record", real)
    mirrored = _orders(_mirror(shops), "wc")
    assert mirrored[0] == mirrored[1]
    assert not versions.versions_of(state, "webcommander", "wc", [str(i) for i in new])
    plan = Projection.plan(state, shops.settings().mirror.open(), "webcommander", "wc")
    assert plan.trusted and not plan.fresh_ok  # the mirror is a batch ahead

    shops.sync(state, "wc")
    total, distinct = _orders(_mirror(shops), "wc")
    assert total == distinct == len(versions.known_hashes(state, "webcommander", "wc"))
    assert set(versions.versions_of(state, "webcommander", "wc", [str(i) for i in new])) == {
        str(i) for i in new
    }
    assert Projection.plan(state, shops.settings().mirror.open(), "webcommander", "wc").fresh_ok
