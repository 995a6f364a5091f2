"""Pages and tables through the shared-memory spool: the same data back, and nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ordersync.models import Platform
from ordersync.sandbox.webcommander.generator import generate_orders
from ordersync.sync import spool
from ordersync.sync.pagework import PageJob, map_page, map_pages


def page_job(orders: list[dict]) -> PageJob:
    """A WebCommander list page of these orders, as a job for a worker."""
    return PageJob(
        body=orjson.dumps({"orders": orders, "total": len(orders)}),
        source_url="http://shop/orders",
        platform=Platform.WEBCOMMANDER,
        shop="wc",
        timezone="Australia/Melbourne",
        currency="AUD",
        mapping="webcommander",
    )


def test_tables_come_back_equal_and_the_file_is_gone(tmp_path: Path) -> None:
    tables = {
        "a": pa.table({"x": [1, 2, 3], "s": ["é", None, "z" * 10_000]}),
        "b": pa.table({"y": pa.array([], pa.string())}),
    }
    spooled = spool.write(str(tmp_path), tables)
    assert Path(spooled.path).exists()
    back = spooled.open()
    assert not Path(spooled.path).exists()  # unlinked once mapped; the tables keep the memory
    assert back.keys() == tables.keys()
    for name, table in tables.items():
        assert back[name].equals(table)


def test_a_page_body_is_read_once(tmp_path: Path) -> None:
    path = spool.put(str(tmp_path), b"page bytes")
    assert spool.take(path) == b"page bytes"
    assert not os.path.exists(path)


def test_a_mapped_page_is_the_same_through_the_spool(tmp_path: Path) -> None:
    orders = list(generate_orders(30, seed=5, realistic=True))
    job = page_job(orders)
    direct = map_page(job)
    body = spool.put(str(tmp_path), job.body)
    spooled = map_page(replace(job, body=b"", body_path=body, spool=str(tmp_path))).load()
    assert spooled.keys == direct.keys and spooled.digests == direct.digests
    for name, table in direct.tables.items():
        # loaded_at and received_at are the mapping time: the only columns that may differ
        columns = [c for c in table.column_names if c not in ("loaded_at", "received_at")]
        assert spooled.tables[name].select(columns).equals(table.select(columns)), name
    assert list(tmp_path.iterdir()) == []


def test_a_run_removes_its_folder_and_the_folders_of_dead_runs() -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    base = spool._base()
    stale = base / f"ordersync-spool-{dead.stdout.strip()}-left"
    stale.mkdir()
    (stale / "1-1.arrows").write_bytes(b"x")
    with spool.spool_folder() as folder:
        assert Path(folder).is_dir() and not stale.exists()
        (Path(folder) / "left.body").write_bytes(b"x")
    assert not Path(folder).exists()


@pytest.mark.parametrize("known", ["all", "none"])
def test_unchanged_orders_are_skipped_before_they_are_parsed(known: str) -> None:
    orders = list(generate_orders(20, seed=9))
    job = replace(page_job(orders), ids=tuple(str(o["id"]) for o in orders))
    first = map_page(job)
    assert first.fetched == 20 and len(first.keys) == 20 and first.unchanged == 0
    hashes = tuple(first.digests[str(o["id"])] for o in orders)
    if known == "none":
        hashes = tuple(None for _ in orders)
    again = map_page(replace(job, known=hashes))
    assert again.fetched == 20
    assert again.unchanged == (20 if known == "all" else 0)
    assert len(again.keys) == (0 if known == "all" else 20)


def test_pages_mapped_together_equal_pages_mapped_alone() -> None:
    """A job of several small pages gives the rows of each page, an order listed twice once (its later
    reading), and counts every order it was handed."""
    orders = list(generate_orders(30, seed=11))
    changed = {
        **orders[5],
        "orderStatus": "completed" if orders[5]["orderStatus"] != "completed" else "pending",
    }
    pages = [orders[:10], orders[10:20], [changed, *orders[20:30]]]  # order 6 again, in the last page

    together = map_pages(tuple(page_job(p) for p in pages))
    alone = [map_page(page_job(p)) for p in pages]
    assert together.pages == 3 and together.fetched == 31
    assert len(together.keys) == 30 and len(set(together.keys)) == 30
    assert together.digests == {**alone[0].digests, **alone[1].digests, **alone[2].digests}
    rows = together.tables["orders"].to_pylist()
    assert len(rows) == 30
    sixth = next(r for r in rows if r["order_id"] == str(orders[5]["id"]))
    later = next(r for r in alone[2].tables["orders"].to_pylist() if r["order_id"] == str(orders[5]["id"]))
    earlier = next(r for r in alone[0].tables["orders"].to_pylist() if r["order_id"] == str(orders[5]["id"]))
    assert sixth["content_hash"] == later["content_hash"] != earlier["content_hash"]
    assert sixth["status_raw"] == changed["orderStatus"]
    lines = (
        sum(t.tables["line_items"].num_rows for t in alone)
        - alone[0]
        .tables["line_items"]
        .filter(pc.equal(alone[0].tables["line_items"]["order_id"], str(orders[5]["id"])))
        .num_rows
    )
    assert together.tables["line_items"].num_rows == lines
