"""What the state store's order versions cost a run's main process, per order: building each batch's
version rows from its Arrow tables (``sync/versions.py``) and upserting them into a SQLite state store
(``state/versions.py``), on realistic WebCommander orders mapped as a worker maps them.

    uv run python bench/versions_bench.py [--orders 1000] [--batches 10] [--state postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import orjson

from ordersync.models import Platform
from ordersync.sandbox.webcommander.generator import generate_orders
from ordersync.state import versions
from ordersync.state.store import StateStore
from ordersync.sync.pagework import PageJob, map_page
from ordersync.sync.versions import version_rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1000, help="orders in a batch")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--state", help="a SQLAlchemy URL (an empty PostgreSQL database); default SQLite")
    args = parser.parse_args()
    page = orjson.dumps(
        {"status": "success", "orders": list(generate_orders(args.orders, 7, realistic=True))}
    )
    job = PageJob(
        body=page,
        source_url="bench",
        platform=Platform.WEBCOMMANDER,
        shop="wc",
        timezone="Europe/Berlin",
        currency="EUR",
        mapping="webcommander",
    )
    tables = map_page(job).tables
    started = time.perf_counter()
    for _ in range(args.batches):
        rows = version_rows(tables)
    build = (time.perf_counter() - started) / args.batches / len(rows) * 1e6
    with tempfile.TemporaryDirectory() as folder:
        store = StateStore(args.state or f"sqlite:///{folder}/state.db")
        store.upgrade()
        timings = {}
        for kind in ("new", "changed"):
            started = time.perf_counter()
            for n in range(args.batches):
                batch = [
                    {**r, "order_id": f"{n}-{r['order_id']}", "content_hash": f"{kind}{n}"} for r in rows
                ]
                with store.engine.begin() as connection:
                    versions.record(connection, batch, n + 1)
            timings[kind] = (time.perf_counter() - started) / args.batches / len(rows) * 1e6
        started = time.perf_counter()
        known = versions.known_hashes(store, "webcommander", "wc")
        read = (time.perf_counter() - started) / len(known) * 1e6
        dialect = store.engine.dialect.name
        store.dispose()
    print(
        f"{len(rows)} orders a batch ({tables['comments'].num_rows} comments, {tables['payments'].num_rows} "
        f"payments): build {build:.1f} µs/order; upsert into {dialect}: new {timings['new']:.1f}, "
        f"changed {timings['changed']:.1f} µs/order; read {len(known):,} hashes back: {read:.1f} µs/order"
    )


if __name__ == "__main__":
    main()
