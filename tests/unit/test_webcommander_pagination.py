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
from ordersync.platforms.webcommander.extract import OrderScan, iter_order_pages, resume_offset


class FakeShop:
    """A tiny router in the shape of the external-app API, counting what it is asked. ``cap`` limits
    ``max`` (still echoing what was asked); ``newest`` lists by id descending."""

    def __init__(self, n: int, delay: float = 0.0, *, cap: int | None = None, newest: bool = False):
        self.ids = list(range(1, n + 1))
        self.cap = cap
        self.newest = newest
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
        listed = self.ids[::-1] if self.newest else self.ids
        take = max_ if self.cap is None or (0 < max_ <= self.cap) else self.cap
        chunk = listed[offset:] if take == -1 else listed[offset : offset + take]
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
    ids = [o["id"] for p in pages for o in p.orders]
    # The pass reads on to the new end; the total moved, so the moving end is read once more and
    # the repair proves the listing: the orders of the first pass once each, the tail read twice.
    assert ids[:40] == list(range(1, 41))
    assert set(ids[40:]) == set(range(26, 41))


def test_wrong_token_is_a_clear_auth_error_without_the_secret() -> None:
    with pytest.raises(AuthError) as info:
        asyncio.run(collect(FakeShop(5), page_size=10, concurrency=1, token="wrong-secret"))
    assert "shop 'wc'" in str(info.value) and "HTTP 401" in str(info.value)
    assert "wrong-secret" not in str(info.value)


async def scan(fake, *, page_size: int, concurrency: int = 3, **kwargs):
    policy = HttpPolicy(HttpSettings(max_retries=0), shop="wc")
    async with WebCommanderClient(shop(), policy, transport=httpx.MockTransport(fake)) as client:
        run = OrderScan(client, page_size=page_size, concurrency=concurrency, pass_pause=0, **kwargs)
        pages = [p async for p in run.pages()]
        return run, pages


@pytest.mark.parametrize("newest", [False, True])
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_capped_host_is_paged_by_what_it_returns(newest: bool, concurrency: int) -> None:
    """Asked for 250, the host answers 50 and echoes 250: every order is still read, once."""
    fake = FakeShop(1234, cap=50, newest=newest)
    run, pages = asyncio.run(scan(fake, page_size=250, concurrency=concurrency))
    seen = [i for p in pages for i in p.page.ids]
    assert sorted(map(int, seen)) == list(range(1, 1235))
    assert run.report.complete and run.report.listing.cap == 50
    assert run.report.listing.order == ("newest" if newest else "oldest")
    # Offsets step by 50 from the first answer on; at most one planned page is wasted per window.
    assert len(fake.requests) <= 25 + concurrency
    assert all(max_ == 250 for _, max_ in fake.requests[:1])


def test_a_remembered_cap_is_asked_for_directly() -> None:
    from ordersync.platforms.webcommander.extract import Listing

    fake = FakeShop(500, cap=50, newest=True)
    run, _ = asyncio.run(scan(fake, page_size=250, listing=Listing(cap=50, order="newest")))
    assert {max_ for _, max_ in fake.requests} == {50}
    assert len(fake.requests) == 10 and run.report.complete


def test_orders_arriving_at_the_head_are_found_and_the_scan_says_complete() -> None:
    fake = FakeShop(300, cap=50, newest=True)
    original = fake.__call__

    async def busy(request: httpx.Request) -> httpx.Response:
        if len(fake.requests) in (2, 4):  # two orders arrive at offset 0 mid-scan
            fake.ids.append(len(fake.ids) + 1)
        return await original(request)

    run, pages = asyncio.run(scan(busy, page_size=250, concurrency=1))
    assert {int(i) for p in pages for i in p.page.ids} == set(range(1, 303))
    assert run.report.complete
    assert run.report.passes[0].duplicates == 2 and run.report.passes[0].repaired


def test_a_listing_that_never_holds_still_is_reported_incomplete() -> None:
    fake = FakeShop(200, cap=50, newest=True)
    original = fake.__call__

    async def churning(request: httpx.Request) -> httpx.Response:
        fake.ids.append(len(fake.ids) + 1)  # an order with every request, and one leaves too
        del fake.ids[len(fake.ids) // 2]
        return await original(request)

    run, _ = asyncio.run(scan(churning, page_size=50, concurrency=2))
    assert not run.report.complete
    assert len(run.report.passes) == 3 and run.report.unverified >= 1
    assert run.report.passes[-1].problem()


def test_an_order_vanishing_mid_scan_is_never_taken_for_complete() -> None:
    fake = FakeShop(200, cap=50)
    original = fake.__call__
    removed: list[int] = []

    async def deleting(request: httpx.Request) -> httpx.Response:
        if len(fake.requests) == 2 and not removed:
            removed.append(fake.ids.pop(10))  # oldest first: every later order moves one place up
        return await original(request)

    run, _ = asyncio.run(scan(deleting, page_size=50, concurrency=1))
    first = run.report.passes[0]
    assert not first.complete and first.distinct == 199  # one order was skipped over, not seen
    # The next pass sees a listing that holds still: every remaining order.
    assert run.report.complete and run.report.seen == {str(i) for i in fake.ids}


@pytest.mark.parametrize(
    ("position", "total_now", "expected"),
    [
        ({"offset": 500, "total": 1000, "order": "newest"}, 1030, 480),  # 30 arrived at the head
        ({"offset": 500, "total": 1000, "order": "oldest"}, 1030, 450),
        (500, 1000, 450),  # a bare offset from an older checkpoint
        ({"offset": 20, "total": 1000, "order": "newest"}, 1000, 0),
    ],
)
def test_resume_positions_hold_in_both_orders(position, total_now: int, expected: int) -> None:
    assert resume_offset(position, total_now, 50) == expected
