"""The yardstick: a minimal httpx + pydantic + pyarrow + DuckDB loader of the same sandbox orders.

    uv run python bench/peers/minimal.py --platform woocommerce --base-url http://127.0.0.1:8702 \
        --db /tmp/peer.duckdb

What a competent engineer writes in an afternoon, and nothing more: pages fetched four at a time,
each order validated by a small pydantic model (Decimal money, aware UTC times), four tables (orders,
line items, addresses, raw payloads; on WooCommerce the raw refunds of refunded orders too, as ordersync
reads them) built as Arrow and inserted into DuckDB per batch. No checkpoint,
no quarantine, no content hash, no verification of the listing, no mapping files. It imports
nothing from ordersync: it is what ordersync's pipeline is measured against, not part of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import httpx
import orjson
import pyarrow as pa
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256, SIGNATURE_TYPE_QUERY, Client
from pydantic import AwareDatetime, BaseModel

WC_UUID = "F8A3-A88E-C6EF-B1CB"
WC_TOKEN = "11b4ec017714ef095b8e115545467fcb"
WOO_KEY = "ck_sandbox_read_write_0000000000000000000000"
WOO_SECRET = "cs_sandbox_read_write_0000000000000000000000"
BATCH = 1000
SHOP_ZONE = ZoneInfo("Australia/Melbourne")  # WebCommander times carry no offset: the shop's zone


class Line(BaseModel):
    line_id: str
    product_id: str | None
    quantity: Decimal
    total: Decimal
    tax: Decimal


class Address(BaseModel):
    kind: str
    city: str | None
    postcode: str | None
    country: str | None


class Order(BaseModel):
    order_id: str
    status: str
    currency: str
    created_at: AwareDatetime
    total: Decimal
    tax_total: Decimal
    lines: list[Line]
    addresses: list[Address]


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _addresses(raw: dict[str, Any], postcode_key: str) -> list[Address]:
    return [
        Address(
            kind=kind,
            city=_text(address.get("city")),
            postcode=_text(address.get(postcode_key)),
            country=_text(address.get("country")),
        )
        for kind in ("billing", "shipping")
        if isinstance(address := raw.get(kind), dict)
    ]


def woocommerce_order(raw: dict[str, Any]) -> Order:
    return Order(
        order_id=str(raw["id"]),
        status=raw["status"],
        currency=raw["currency"],
        created_at=datetime.fromisoformat(raw["date_created_gmt"]).replace(tzinfo=UTC),
        total=Decimal(raw["total"]),
        tax_total=Decimal(raw["total_tax"]),
        lines=[
            Line(
                line_id=str(li["id"]),
                product_id=_text(li.get("product_id")),
                quantity=Decimal(li["quantity"]),
                total=Decimal(li["total"]),
                tax=Decimal(li["total_tax"]),
            )
            for li in raw["line_items"]
        ],
        addresses=_addresses(raw, "postcode"),
    )


def webcommander_order(raw: dict[str, Any]) -> Order:
    summary = raw["orderSummary"]
    created = str(raw["created"]).replace(" ", "")
    return Order(
        order_id=str(raw["id"]),
        status=raw["orderStatus"],
        currency="AUD",
        created_at=datetime.fromisoformat(created).replace(tzinfo=SHOP_ZONE).astimezone(UTC),
        total=Decimal(str(summary["grandTotal"])),
        tax_total=Decimal(str(summary["totalTax"])),
        lines=[
            Line(
                line_id=str(li["id"]),
                product_id=_text(li.get("productId")),
                quantity=Decimal(str(li["quantity"])),
                total=Decimal(str(li["price"])) * Decimal(str(li["quantity"])),
                tax=Decimal(str(li["tax"])),
            )
            for li in raw["items"]
        ],
        addresses=_addresses(raw, "postCode"),
    )


MONEY = pa.decimal128(18, 4)
SCHEMAS = {
    "orders": pa.schema(
        [("order_id", pa.string()), ("status", pa.string()), ("currency", pa.string()),
         ("created_at", pa.timestamp("us", tz="UTC")), ("total", MONEY), ("tax_total", MONEY)]
    ),
    "line_items": pa.schema(
        [("order_id", pa.string()), ("line_id", pa.string()), ("product_id", pa.string()),
         ("quantity", MONEY), ("total", MONEY), ("tax", MONEY)]
    ),
    "addresses": pa.schema(
        [("order_id", pa.string()), ("kind", pa.string()), ("city", pa.string()), ("postcode", pa.string()),
         ("country", pa.string())]
    ),
    "raw_orders": pa.schema([("order_id", pa.string()), ("payload", pa.string())]),
    "raw_refunds": pa.schema([("order_id", pa.string()), ("payload", pa.string())]),
}  # fmt: skip


class Loader:
    def __init__(self, path: Path):
        self.con = duckdb.connect(str(path))
        for table, schema in SCHEMAS.items():
            columns = ", ".join(f"{f.name} {_sql(f.type)}" for f in schema)
            self.con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
        self.rows: dict[str, list[dict[str, Any]]] = {t: [] for t in SCHEMAS}
        self.orders = 0

    def add(self, order: Order, raw: dict[str, Any], refunds: bytes | None = None) -> None:
        self.rows["orders"].append(order.model_dump(exclude={"lines", "addresses"}))
        self.rows["line_items"] += [{"order_id": order.order_id, **li.model_dump()} for li in order.lines]
        self.rows["addresses"] += [{"order_id": order.order_id, **a.model_dump()} for a in order.addresses]
        self.rows["raw_orders"].append({"order_id": order.order_id, "payload": orjson.dumps(raw).decode()})
        if refunds is not None:
            self.rows["raw_refunds"].append({"order_id": order.order_id, "payload": refunds.decode()})
        self.orders += 1
        if len(self.rows["orders"]) >= BATCH:
            self.flush()

    def flush(self) -> None:
        self.con.execute("BEGIN")
        for table, rows in self.rows.items():
            if rows:
                batch = pa.Table.from_pylist(rows, schema=SCHEMAS[table])
                self.con.register("batch", batch)
                self.con.execute(f"INSERT INTO {table} SELECT * FROM batch")
                self.con.unregister("batch")
        self.con.execute("COMMIT")
        self.rows = {t: [] for t in SCHEMAS}


def _sql(kind: pa.DataType) -> str:
    if pa.types.is_decimal(kind):
        return "DECIMAL(18,4)"
    if pa.types.is_timestamp(kind):
        return "TIMESTAMPTZ"
    return "VARCHAR"


def _oauth(url: str) -> str:
    client = Client(WOO_KEY, client_secret=WOO_SECRET, signature_method=SIGNATURE_HMAC_SHA256,
                    signature_type=SIGNATURE_TYPE_QUERY)  # fmt: skip
    return client.sign(url)[0]


async def woocommerce(client: httpx.AsyncClient, base: str, loader: Loader) -> int:
    """Like ordersync, the refunds of each order whose summary lists one are read beside the page."""
    requests = 0

    async def get(path: str) -> httpx.Response:
        nonlocal requests
        requests += 1
        response = await client.get(_oauth(f"{base}/wp-json/wc/v3/{path}"))
        response.raise_for_status()
        return response

    def page(n: int) -> Awaitable[httpx.Response]:
        return get(f"orders?per_page=100&page={n}&status=any&orderby=date&order=asc")

    async def load(answer: httpx.Response) -> None:
        raws = orjson.loads(answer.content)
        refunded = [raw for raw in raws if raw.get("refunds")]
        found = await asyncio.gather(*(get(f"orders/{raw['id']}/refunds") for raw in refunded))
        refunds = {raw["id"]: r.content for raw, r in zip(refunded, found, strict=True)}
        for raw in raws:
            loader.add(woocommerce_order(raw), raw, refunds.get(raw["id"]))

    first = await page(1)
    pages = int(first.headers["X-WP-TotalPages"])
    await load(first)
    for start in range(2, pages + 1, 4):
        answers = await asyncio.gather(*(page(n) for n in range(start, min(start + 4, pages + 1))))
        for answer in answers:
            await load(answer)
    return requests


async def webcommander(client: httpx.AsyncClient, base: str, loader: Loader) -> int:
    headers = {"uuid": WC_UUID, "accessToken": WC_TOKEN}

    async def page(offset: int) -> dict[str, Any]:
        params = {"max": 250, "offset": offset}
        response = await client.get(f"{base}/external/app/access/orders", params=params, headers=headers)
        response.raise_for_status()
        return orjson.loads(response.content)

    first = await page(0)
    total, step = int(first["total"]), len(first["orders"])  # the host's cap, whatever was asked
    requests = 1
    for raw in first["orders"]:
        loader.add(webcommander_order(raw), raw)
    offsets = list(range(step, total, step))
    for start in range(0, len(offsets), 4):
        bodies = await asyncio.gather(*(page(o) for o in offsets[start : start + 4]))
        requests += len(bodies)
        for body in bodies:
            for raw in body["orders"]:
                loader.add(webcommander_order(raw), raw)
    return requests


async def run(platform: str, base: str, db: Path) -> dict[str, Any]:
    loader = Loader(db)
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=4)) as client:
        fetch = woocommerce if platform == "woocommerce" else webcommander
        requests = await fetch(client, base, loader)
    loader.flush()
    loader.con.close()
    seconds = time.perf_counter() - started
    return {
        "orders": loader.orders,
        "seconds": seconds,
        "orders_per_s": loader.orders / seconds,
        "requests": requests,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--platform", choices=["webcommander", "woocommerce"], required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--db", type=Path, required=True)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.platform, args.base_url, args.db))))


if __name__ == "__main__":
    main()
