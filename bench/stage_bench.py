"""The pipeline's stages one at a time, in one process, without HTTP: per-order costs to compare.

    uv run python bench/stage_bench.py                      # mapping stages, 2,000 realistic orders
    uv run python bench/stage_bench.py --write --threads 1  # DuckDB writes of 20,000 mapped orders
    uv run python bench/stage_bench.py --write --threads 2

Mapping: a page parsed (orjson), the canonical dicts built by the mapping's compiled builders and by
its general closures (``straight=False``), pydantic validation, Arrow rows from the models, the
columnar path that replaces those two (rows from the dicts, checked in Arrow), and ``map_page`` whole
(split, hash, map, tables), each as the best of three. Writes: the orders mapped once, then written
into an empty mirror in batches of ``--batch`` orders inside one session, with the CPU of the process
(DuckDB's threads included) per order.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import yaml

from ordersync.mapping import MappingContext, load_mapping, mappings_dir
from ordersync.mapping.engine import OrderMapper
from ordersync.mirror.batch import Batch, LoadedOrder, order_tables
from ordersync.mirror.columnar import Mapped, dict_tables
from ordersync.mirror.store import Mirror
from ordersync.models import Order, Platform
from ordersync.sandbox.webcommander.generator import generate_orders
from ordersync.sync.pagework import PageJob, map_page, relax_gc

CTX = MappingContext(
    platform=Platform.WEBCOMMANDER, shop="s", timezone=ZoneInfo("Australia/Melbourne"), currency="AUD"
)


def best(label: str, work: Callable[[], Any], orders: int) -> Any:
    times, result = [], None
    for _ in range(3):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    print(f"{label:<34} {min(times) / orders * 1e6:8.1f} µs/order")
    return result


def pages_of(orders: list[dict[str, Any]], size: int = 50) -> list[bytes]:
    return [orjson.dumps({"orders": orders[i : i + size]}) for i in range(0, len(orders), size)]


def job(body: bytes) -> PageJob:
    return PageJob(
        body=body,
        source_url="u",
        platform=Platform.WEBCOMMANDER,
        shop="s",
        timezone="Australia/Melbourne",
        currency="AUD",
        mapping="webcommander",
    )


def mapping(n: int) -> None:
    relax_gc()
    orders = list(generate_orders(n, realistic=True))
    pages = pages_of(orders)
    print(f"{n:,} realistic WebCommander orders, {sum(map(len, pages)) / n:,.0f} bytes each, pages of 50")
    compiled = load_mapping("webcommander")
    path = mappings_dir() / "webcommander.yaml"
    general = OrderMapper(yaml.safe_load(path.read_text()), source=str(path), straight=False)
    best("parse (orjson)", lambda: [orjson.loads(p) for p in pages], n)
    best("build, compiled", lambda: [compiled._build(o, CTX, "") for o in orders], n)
    best("build, general closures", lambda: [general._build(o, CTX, "") for o in orders], n)
    built = [compiled._build(o, CTX, "") | {"platform": CTX.platform, "shop": CTX.shop} for o in orders]
    models = best("validate (pydantic)", lambda: [Order.model_validate(d) for d in built], n)
    now = datetime.now(UTC)
    loaded = [LoadedOrder(m, orjson.dumps(o), "h", "u") for m, o in zip(models, orders, strict=True)]
    best("Arrow rows", lambda: [order_tables(loaded[i : i + 50], now) for i in range(0, n, 50)], n)
    raws = [orjson.dumps(o) for o in orders]
    mapped = [Mapped(d, r, "h", "u") for d, r in zip(built, raws, strict=True)]
    best(
        "columnar tables (checked, no models)",
        lambda: [dict_tables(mapped[i : i + 50], now) for i in range(0, n, 50)],
        n,
    )
    best("map_page (split, hash, map, tables)", lambda: [map_page(job(p)) for p in pages], n)


def writes(n: int, batch: int, threads: int) -> None:
    orders = list(generate_orders(n, realistic=True))
    results = [map_page(job(p)) for p in pages_of(orders)]

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    with tempfile.TemporaryDirectory() as folder:
        mirror = Mirror(Path(folder) / "m.duckdb", threads=threads)
        started, wall = cpu(), time.perf_counter()
        with mirror.session():
            mirror.ensure_schema()
            pending, count = Batch(), 0
            for result in results:
                pending.add_tables(result.tables, result.quarantine, result.keys, fresh=True)
                count += len(result.keys)
                if count >= batch:
                    mirror.write(pending)
                    pending, count = Batch(), 0
            if count:
                mirror.write(pending)
        spent = cpu() - started
    print(
        f"{n:,} orders in batches of {batch:,}, DuckDB threads {threads}: {spent / n * 1e6:.0f} µs CPU "
        f"an order, {time.perf_counter() - wall:.2f} s (the final checkpoint included)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int)
    parser.add_argument("--write", action="store_true", help="time DuckDB writes instead of mapping")
    parser.add_argument("--batch", type=int, default=650, help="orders a write (about 8 MiB of Arrow data)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.write:
        writes(args.orders or 20_000, args.batch, args.threads)
    else:
        mapping(args.orders or 2_000)


if __name__ == "__main__":
    main()
