"""Offset pagination: concurrent, in order, bounded, and correct at the edges."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from ordersync.config import HttpSettings, WebCommanderShop
from ordersync.errors import AuthError
from ordersync.http import HttpPolicy
from ordersync.platforms.webcommander.client import WebCommanderClient
from ordersync.platforms.webcommander.extract import iter_order_pages


class FakeShop:
    """A tiny router in the shape of the external-app API, counting what it is asked."""

    def __init__(self, n: int, delay: float = 0.0):
        self.ids = list(range(1, n + 1))
        self.delay = delay
        self.in_flight = 0
        self.peak = 0
        self.requests: list[tuple[int, int]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("accessToken") != "tok" or request.headers.get("uuid") != "U":
            return httpx.Response(401, json={"status": "error", "message": "Invalid uuid or accessToken"})
        max_ = int(request.url.params["max"])
        offset = int(request.url.params["offset"])
        self.requests.append((offset, max_))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(self.delay)
        self.in_flight -= 1
        chunk = self.ids[offset:] if max_ == -1 else self.ids[offset : offset + max_]
        body = {
            "status": "success",
            "total": len(self.ids),
            "max": str(max_),
            "offset": str(offset),
            "orders": [{"id": i} for i in chunk],
        }
        return httpx.Response(200, content=orjson.dumps(body), headers={"content-type": "application/json"})


def shop(token: str = "tok") -> WebCommanderShop:
    return WebCommanderShop(
        name="wc", platform="webcommander", base_url="http://wc.test", uuid="U", access_token=token
    )


async def collect(fake, *, page_size: int, concurrency: int, limit: int | None = None, token: str = "tok"):
    policy = HttpPolicy(HttpSettings(max_retries=0), shop="wc")
    async with WebCommanderClient(shop(token), policy, transport=httpx.MockTransport(fake)) as client:
        return [
            p
            async for p in iter_order_pages(client, page_size=page_size, concurrency=concurrency, limit=limit)
        ]


@pytest.mark.parametrize(("n", "size"), [(0, 10), (1, 10), (10, 10), (11, 10), (95, 7)])
def test_every_order_once_in_order(n: int, size: int) -> None:
    fake = FakeShop(n)
    pages = asyncio.run(collect(fake, page_size=size, concurrency=3))
    ids = [o["id"] for p in pages for o in p.orders]
    assert ids == list(range(1, n + 1))
    assert [p.offset for p in pages] == sorted(p.offset for p in pages)


def test_concurrency_is_used_and_bounded() -> None:
    fake = FakeShop(200, delay=0.02)
    asyncio.run(collect(fake, page_size=10, concurrency=4))
    assert fake.peak == 4
    assert len(fake.requests) == 20


def test_limit_stops_early_and_cuts_the_last_page() -> None:
    fake = FakeShop(1000)
    pages = asyncio.run(collect(fake, page_size=30, concurrency=2, limit=75))
    assert sum(len(p.orders) for p in pages) == 75
    assert len(fake.requests) == 3


def test_total_growing_during_the_run_is_followed() -> None:
    fake = FakeShop(25)
    original = fake.__call__

    async def growing(request: httpx.Request) -> httpx.Response:
        if int(request.url.params["offset"]) == 10 and len(fake.ids) == 25:
            fake.ids.extend(range(26, 41))  # fifteen orders arrive mid-run
        return await original(request)

    pages = asyncio.run(collect(growing, page_size=10, concurrency=1))
    assert [o["id"] for p in pages for o in p.orders] == list(range(1, 41))


def test_wrong_token_is_a_clear_auth_error_without_the_secret() -> None:
    with pytest.raises(AuthError) as info:
        asyncio.run(collect(FakeShop(5), page_size=10, concurrency=1, token="wrong-secret"))
    assert "shop 'wc'" in str(info.value) and "HTTP 401" in str(info.value)
    assert "wrong-secret" not in str(info.value)
