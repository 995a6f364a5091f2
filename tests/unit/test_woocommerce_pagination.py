"""Page-number pagination over a small fake v3 shop: in order, bounded, and right at the edges."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import httpx
import orjson
import pytest

from ordersync.config import HttpSettings, WooCommerceShop
from ordersync.http import HttpPolicy
from ordersync.platforms.woocommerce.client import OrderFilters, RestV3Client
from ordersync.platforms.woocommerce.extract import fetch_details, iter_order_pages


class FakeShop:
    """``GET /wp-json/wc/v3/orders`` in date order; ``on_request`` may add orders mid-run."""

    def __init__(self, n: int, *, headers: bool = True, delay: float = 0.0):
        self.ids = list(range(1, n + 1))
        self.headers = headers
        self.delay = delay
        self.in_flight = 0
        self.peak = 0
        self.pages: list[int] = []
        self.detail_paths: list[str] = []
        self.on_request: Callable[[int], None] | None = None
        self.gone: set[int] = set()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(self.delay)
        self.in_flight -= 1
        path = request.url.path
        if path != "/wp-json/wc/v3/orders":
            self.detail_paths.append(path)
            order_id = int(path.split("/")[5])
            if order_id in self.gone:
                body = {
                    "code": "woocommerce_rest_shop_order_invalid_id",
                    "message": "Invalid ID.",
                    "data": {"status": 404},
                }
                return httpx.Response(404, json=body)
            if path.endswith("/refunds"):
                body = [{"id": 1000 + order_id, "amount": "1.00"}]
            else:
                body = [{"id": 5000 + order_id, "note": "n", "customer_note": False}]
            return httpx.Response(
                200, content=orjson.dumps(body), headers={"content-type": "application/json"}
            )
        page = int(request.url.params.get("page", 1))
        per_page = int(request.url.params.get("per_page", 10))
        self.pages.append(page)
        if self.on_request:
            self.on_request(page)
        chunk = self.ids[(page - 1) * per_page : page * per_page]
        headers = {"content-type": "application/json"}
        if self.headers:
            headers["X-WP-Total"] = str(len(self.ids))
            headers["X-WP-TotalPages"] = str(math.ceil(len(self.ids) / per_page))
        orders = [{"id": i, "refunds": [{"id": 1}] if i % 5 == 0 else []} for i in chunk]
        return httpx.Response(200, content=orjson.dumps(orders), headers=headers)


def client(fake: FakeShop) -> RestV3Client:
    shop = WooCommerceShop(
        name="fake",
        platform="woocommerce",
        base_url="https://shop.test",
        consumer_key="ck",
        consumer_secret="cs",
    )
    return RestV3Client(shop, HttpPolicy(HttpSettings(), shop="fake"), transport=httpx.MockTransport(fake))


def collect(fake: FakeShop, per_page: int, concurrency: int = 3, limit: int | None = None) -> list[int]:
    async def run() -> list[int]:
        ids: list[int] = []
        async with client(fake) as c:
            async for page in iter_order_pages(c, per_page=per_page, concurrency=concurrency, limit=limit):
                ids.extend(o["id"] for o in page.orders[: page.count])
        return ids

    return asyncio.run(run())


@pytest.mark.parametrize("n", [0, 1, 99, 100, 101, 250])
def test_every_order_once_in_order_whatever_the_size(n: int) -> None:
    fake = FakeShop(n)
    assert collect(fake, 100) == list(range(1, n + 1))
    # No request past the last page: a short last page or the page count ends the run.
    assert max(fake.pages) == max(1, math.ceil(n / 100))


def test_empty_shop_is_one_request() -> None:
    fake = FakeShop(0)
    assert collect(fake, 100) == []
    assert fake.pages == [1]


def test_pages_grow_during_the_run_and_the_new_ones_are_read() -> None:
    fake = FakeShop(250, delay=0.01)

    def arrive(page: int) -> None:
        if page == 2 and len(fake.ids) == 250:
            fake.ids.extend(range(251, 421))  # 170 new orders: 5 pages instead of 3

    fake.on_request = arrive
    assert collect(fake, 100, concurrency=2) == list(range(1, 421))


def test_concurrency_is_bounded() -> None:
    fake = FakeShop(2000, delay=0.01)
    assert len(collect(fake, 100, concurrency=3)) == 2000
    assert fake.peak <= 3


def test_without_total_headers_pages_are_read_until_a_short_one() -> None:
    fake = FakeShop(230, headers=False)
    assert collect(fake, 100) == list(range(1, 231))
    assert fake.pages == [1, 2, 3]


def test_limit_cuts_the_last_page_and_asks_no_further() -> None:
    fake = FakeShop(1000)
    assert collect(fake, 100, limit=150) == list(range(1, 151))
    assert sorted(fake.pages) == [1, 2]


def test_details_are_bounded_across_pages_and_asked_only_where_needed() -> None:
    fake = FakeShop(300, delay=0.005)

    async def run() -> dict[str, dict[str, object]]:
        limiter = asyncio.Semaphore(4)
        merged: dict[str, dict[str, object]] = {}
        async with client(fake) as c:
            pages = [p async for p in iter_order_pages(c, per_page=100, concurrency=3)]
            fake.peak = 0
            done = await asyncio.gather(
                *(fetch_details(c, p, refunds=True, notes=True, limiter=limiter) for p in pages)
            )
        for item in done:
            assert item.attachments is not None
            merged.update(orjson.loads(item.attachments))
        return merged

    merged = asyncio.run(run())
    assert fake.peak <= 4
    refunded = {k for k, v in merged.items() if "_refunds" in v}
    assert refunded == {str(i) for i in range(5, 301, 5)}
    assert all(len(v["_notes"]) == 1 for v in merged.values()) and len(merged) == 300
    assert sum(p.endswith("/refunds") for p in fake.detail_paths) == 60


def test_filters_reach_the_query_in_the_forms_the_shop_reads() -> None:
    from datetime import datetime, timedelta, timezone

    c = client(FakeShop(0))
    after = datetime(2026, 11, 22, 15, 15, 43, tzinfo=timezone(timedelta(hours=1)))
    params = c.list_params(2, 50, OrderFilters(statuses=("processing", "on-hold"), modified_after=after))
    assert params == {
        "per_page": 50,
        "page": 2,
        "status": "processing,on-hold",
        "orderby": "date",
        "order": "asc",
        "modified_after": "2026-11-22T14:15:43",
        "dates_are_gmt": "true",
    }
    with pytest.raises(ValueError, match="timezone-aware"):
        c.list_params(1, 10, OrderFilters(created_after=datetime(2026, 1, 1)))
    asyncio.run(c.aclose())


def test_an_order_deleted_before_its_details_are_read_maps_without_them() -> None:
    fake = FakeShop(20)
    fake.gone = {5, 7}

    async def run() -> dict[str, dict[str, object]]:
        async with client(fake) as c:
            page = await c.orders_page(1, 20)
            done = await fetch_details(c, page, refunds=True, notes=True, limiter=asyncio.Semaphore(4))
        assert done.attachments is not None
        return orjson.loads(done.attachments)

    merged = asyncio.run(run())
    assert "5" not in merged and "7" not in merged  # 404s are skipped, not fatal
    assert len(merged) == 18 and "_refunds" in merged["10"] and "_notes" in merged["10"]
