"""A verified scan of ``GET orders``: paging that believes what the shop answered, not what was asked.

The document leaves open how many orders a page may hold and in which order the listing runs, and a
real shop may cap ``max`` (asked 250, answered 50, still echoing 250) and list newest first, so new
orders arrive at offset 0 and push every later offset along while a scan runs. So a scan:

- steps offsets by the number of orders each page returned, and takes a page shorter than asked that
  does not reach the end as the host's cap, used for the rest of the run and remembered for the next;
- learns the listing's order from the ids it sees;
- counts what it saw. A pass is complete only when ``total`` never moved during it, it saw as many
  distinct ids as ``total`` says, and no id twice. Otherwise the listing is read again (bounded, with
  a pause between passes); orders already mirrored cost a hash, not a write. A scan that cannot reach
  a complete pass says so, with the figures, and nothing may be concluded from it about orders it did
  not see.

Pages are fetched ``concurrency`` at a time and handed over in offset order, so a resume position is
the end of a contiguous stretch. Newest first, that position is counted from the stable end of the
listing (orders arriving at the head do not move it).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from ordersync.aio import cancel_and_wait
from ordersync.idset import IdSet
from ordersync.platforms.webcommander.client import OrdersPage, WebCommanderClient

log = structlog.get_logger("ordersync.webcommander")

NEWEST, OLDEST = "newest", "oldest"


@dataclass
class Listing:
    """How the shop was seen to page; kept in the state store so the next run starts with it."""

    cap: int | None = None
    """The most orders the host returns per page, once a page came back shorter than asked."""
    order: str | None = None
    """``newest`` or ``oldest`` first, once the ids showed it."""

    def to_json(self) -> dict[str, Any]:
        return {"cap": self.cap, "order": self.order}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Listing:
        data = data or {}
        cap = data.get("cap")
        order = data.get("order")
        return cls(cap=int(cap) if cap else None, order=order if order in (NEWEST, OLDEST) else None)


@dataclass
class ScanPass:
    """What one pass over the listing saw."""

    number: int
    start: int
    totals: list[int] = field(default_factory=list)
    """Each distinct ``total`` the pages reported, in the order seen."""
    ids: IdSet = field(default_factory=IdSet)
    anonymous: int = 0
    """Records without an id: counted, but they cannot be checked for repeats."""
    duplicates: int = 0
    pages: int = 0
    cut_short: str | None = None
    """Why the pass stopped before the end of the listing, if it did."""
    first_total: int | None = None
    head_max: int | None = None
    """The highest id on the first page at offset 0: every order listed when the pass began has an id
    no higher (ids grow), so orders above it arrived during the pass."""
    early: IdSet = field(default_factory=IdSet)
    """Ids read at the first ``first_total`` positions (oldest first: the orders listed at the start)."""
    repaired: bool = False
    """The pass missed only orders that arrived during it, and a read of the listing's moving end,
    with a total that held still, found them all."""
    repair_ids: set[str] = field(default_factory=set)

    @property
    def distinct(self) -> int:
        return len(self.ids) + self.anonymous

    @property
    def total(self) -> int:
        return self.totals[-1] if self.totals else 0

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.cut_short is None

    @property
    def clean(self) -> bool:
        return len(self.totals) == 1 and self.distinct == self.total and not self.duplicates

    @property
    def complete(self) -> bool:
        return self.whole and (self.clean or self.repaired)

    def problem(self) -> str | None:
        """Why this pass does not prove the listing complete, in words."""
        if self.complete:
            return None
        if self.cut_short:
            return self.cut_short
        if self.start:
            return f"resumed at offset {self.start}, so earlier orders were not seen in this pass"
        issues = []
        if len(self.totals) > 1:
            issues.append(f"total moved during the pass ({' -> '.join(map(str, self.totals))})")
        if self.distinct != self.total:
            issues.append(f"saw {self.distinct} distinct orders of the {self.total} the shop reports")
        if self.duplicates:
            issues.append(f"{self.duplicates} orders listed twice")
        return "; ".join(issues) or None

    def to_json(self) -> dict[str, Any]:
        return {
            "pass": self.number,
            "start": self.start,
            "totals": self.totals,
            "distinct": self.distinct,
            "duplicates": self.duplicates,
            "pages": self.pages,
            "complete": self.complete,
            "repaired": self.repaired,
            "problem": self.problem(),
        }


@dataclass
class ScanReport:
    listing: Listing
    passes: list[ScanPass] = field(default_factory=list)
    sample: bool = False
    """A ``--limit`` run: it was never meant to see everything, so it is not judged."""

    @property
    def complete(self) -> bool:
        return bool(self.passes) and self.passes[-1].complete

    @property
    def seen(self) -> IdSet:
        """The ids of the complete pass: what the listing holds (only meaningful when complete)."""
        if not self.passes:
            return IdSet()
        seen = IdSet(self.passes[-1].repair_ids)
        seen.update(self.passes[-1].ids)
        return seen

    @property
    def unverified(self) -> int:
        """How many orders the scan could not account for: the shortfall (or excess) against the
        shop's total in the best pass, at least one when no pass was complete."""
        if self.complete or not self.passes:
            return 0
        best = min(self.passes, key=lambda p: (not p.whole, abs(p.total - p.distinct) + p.duplicates))
        return max(abs(best.total - best.distinct) + best.duplicates, 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "unverified": self.unverified,
            "listing": self.listing.to_json(),
            "passes": [p.to_json() for p in self.passes],
        }


@dataclass(frozen=True)
class ScannedPage:
    page: OrdersPage
    resume: dict[str, Any] | None
    """Where a run killed after this page starts again (``resume_offset``), or None for a page that
    moves no position."""


def resume_offset(position: Any, total_now: int, page: int) -> int:
    """The offset to start from, one page before a recorded position. Newest first the position is
    counted from the end of the listing (``total - offset``), which orders arriving at the head do not
    move; oldest first it is the offset itself. A bare number is an offset (older checkpoints)."""
    if isinstance(position, dict):
        offset = int(position.get("offset") or 0)
        if position.get("order") == NEWEST:
            remaining = int(position.get("total") or 0) - offset
            offset = total_now - remaining
    else:
        offset = int(position or 0)
    return max(offset - page, 0)


class OrderScan:
    """One run's scan of the listing: ``pages()`` yields pages, ``report`` says what they prove."""

    def __init__(
        self,
        client: WebCommanderClient,
        *,
        page_size: int,
        concurrency: int,
        listing: Listing | None = None,
        limit: int | None = None,
        resume: Any = None,
        max_passes: int = 3,
        pass_pause: float = 1.0,
        keep_orders: bool = False,
    ):
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.client = client
        self.page_size = page_size
        self.concurrency = concurrency
        self.limit = limit
        self.resume = resume
        self.max_passes = max_passes
        self.pass_pause = pass_pause
        self.keep_orders = keep_orders
        self.sequential = False
        self.report = ScanReport(listing or Listing(), sample=limit is not None)

    @property
    def listing(self) -> Listing:
        return self.report.listing

    @property
    def ask(self) -> int:
        return min(self.listing.cap, self.page_size) if self.listing.cap else self.page_size

    async def pages(self) -> AsyncIterator[ScannedPage]:
        for number in range(1, self.max_passes + 1):
            scan = ScanPass(number=number, start=0)
            self.report.passes.append(scan)
            async for page in self._one_pass(scan, self.resume if number == 1 else None):
                yield page
            if self.limit is None and scan.whole and not scan.clean:
                async for page in self._repair(scan):
                    yield page
            if self.limit is not None or scan.complete:
                return
            if number < self.max_passes and scan.whole:
                log.warning(
                    "webcommander.scan_unverified",
                    shop=self.client.shop.name,
                    scan_pass=number,
                    problem=scan.problem(),
                    next_pass_in=self.pass_pause * 2 ** (number - 1),
                )
                await asyncio.sleep(self.pass_pause * 2 ** (number - 1))
        log.error(
            "webcommander.scan_incomplete",
            shop=self.client.shop.name,
            passes=len(self.report.passes),
            unverified=self.report.unverified,
            problem=self.report.passes[-1].problem(),
        )

    async def _one_pass(self, scan: ScanPass, resume: Any) -> AsyncIterator[ScannedPage]:
        start = 0
        if resume is not None:
            # The head page tells the current total (newest first, the recorded position is counted
            # from the end); its orders are read too, as any other page.
            head = await self._fetch(0)
            self._absorb(scan, head)
            yield ScannedPage(head, None)
            start = max(resume_offset(resume, head.total, self.ask), head.count)
            scan.start = start
            if start >= head.total:
                return
        wanted = None if self.limit is None else start + self.limit
        frontier, total, step = start, None, self.ask
        window: deque[tuple[int, asyncio.Task[OrdersPage]]] = deque()
        try:
            while True:
                # The first page alone (it tells the total and the cap), then `concurrency` at once;
                # one at a time once orders were seen arriving at the head of a newest-first listing,
                # where pages served out of order could skip orders the arrivals pushed along.
                room = 1 if total is None or self.sequential else self.concurrency
                next_offset = window[-1][0] + step if window else frontier
                while (
                    len(window) < room
                    and (total is None or next_offset < total)
                    and (wanted is None or next_offset < wanted)
                ):
                    window.append((next_offset, asyncio.create_task(self._fetch(next_offset))))
                    next_offset += step
                if not window:
                    return
                offset, task = window.popleft()
                page = await task
                if offset != frontier:
                    continue  # planned before the host's page size was known; the plan is redone
                self._absorb(scan, page)
                if self.listing.order == NEWEST and len(scan.totals) > 1 and not self.sequential:
                    log.info("webcommander.scan_sequential", shop=self.client.shop.name, why="arrivals")
                    self.sequential = True
                frontier, total = page.offset + page.count, page.total
                yield ScannedPage(_cut(page, wanted), self._position(page))
                if wanted is not None and frontier >= wanted:
                    return
                if not page.count:
                    if page.offset < page.total:
                        scan.cut_short = f"an empty page at offset {page.offset} of {page.total}"
                    return
                if page.count != step and frontier < page.total:
                    # The host answered another page size than planned (it caps `max`): the pages
                    # planned after this one would leave gaps or overlap, so plan again from here.
                    step = page.count
                    await cancel_and_wait([t for _, t in window])
                    window.clear()
        finally:
            await cancel_and_wait([t for _, t in window])

    async def _repair(self, scan: ScanPass) -> AsyncIterator[ScannedPage]:
        """Re-read only the end of the listing that moved, when the pass's figures say that orders
        arrived and none left: no total below the first, and every order listed at the start seen.
        Newest first, the new orders sit before the oldest id of the start; oldest first, after the
        first ``first_total`` positions. The repair proves the listing only if its own total held
        still and the new orders it found account for the whole difference."""
        order, first = self.listing.order, scan.first_total
        if first is None or order is None or scan.anonymous or min(scan.totals) < first:
            return
        totals: set[int] = set()
        if order == NEWEST:
            head_max = scan.head_max
            if head_max is None:
                return
            old_seen = sum(1 for i in scan.ids if i.isdigit() and int(i) <= head_max)
            if old_seen != first:
                return
            offset, arrived = 0, -1
            while arrived < 0 and offset <= first + self.ask:
                page = await self._fetch(offset)
                totals.add(page.total)
                yield ScannedPage(page, None)
                for k, record_id in enumerate(page.ids):
                    if record_id is None or not record_id.isdigit():
                        return
                    if int(record_id) <= head_max:
                        arrived = offset + k
                        break
                    scan.repair_ids.add(record_id)
                if not page.count:
                    return
                offset += page.count
            scan.repaired = len(totals) == 1 and arrived >= 0 and page.total - arrived == first
        else:
            if len(scan.early) != first:
                return
            offset = first
            while True:
                page = await self._fetch(offset)
                totals.add(page.total)
                yield ScannedPage(page, None)
                if None in page.ids:
                    return
                scan.repair_ids.update(i for i in page.ids if i is not None)
                offset += page.count
                if not page.count or offset >= page.total:
                    break
            scan.repaired = (
                len(totals) == 1
                and not (scan.repair_ids & scan.early)
                and len(scan.repair_ids) == page.total - first
            )
        if scan.repaired:
            log.info(
                "webcommander.scan_repaired",
                shop=self.client.shop.name,
                arrived=len(scan.repair_ids),
                total=page.total,
            )

    async def _fetch(self, offset: int) -> OrdersPage:
        return await self.client.orders_page(offset, self.ask, keep_orders=self.keep_orders)

    def _absorb(self, scan: ScanPass, page: OrdersPage) -> None:
        """Count the page into the pass; learn the host's cap and the listing's order from it."""
        scan.pages += 1
        if page.total not in scan.totals:
            scan.totals.append(page.total)
        if page.offset == 0 and scan.first_total is None:
            scan.first_total = page.total
            numbers = _numbers(page.ids)
            scan.head_max = max(numbers) if numbers else None
        if scan.first_total is not None and page.offset < scan.first_total:
            scan.early.update(i for i in page.ids[: scan.first_total - page.offset] if i is not None)
        for record_id in page.ids:
            if record_id is None:
                scan.anonymous += 1
            elif record_id in scan.ids:
                scan.duplicates += 1
            else:
                scan.ids.add(record_id)
        self._learn_order(page)
        short = 0 < page.count < page.asked and page.offset + page.count < page.total
        if short and self.listing.cap != page.count:
            log.warning(
                "webcommander.page_cap",
                shop=self.client.shop.name,
                asked=page.asked,
                answered=page.count,
                note="the host caps `max`: paging by what it returns, for this run and the next",
            )
            self.listing.cap = page.count

    def _learn_order(self, page: OrdersPage) -> None:
        numbers = _numbers(page.ids)
        if len(numbers) < 2 or numbers[0] == numbers[-1]:
            return
        order = NEWEST if numbers[0] > numbers[-1] else OLDEST
        if self.listing.order != order:
            if self.listing.order is not None:
                log.warning(
                    "webcommander.order_changed", shop=self.client.shop.name, before=self.listing.order
                )
            log.info("webcommander.listing_order", shop=self.client.shop.name, order=order)
            self.listing.order = order

    def _position(self, page: OrdersPage) -> dict[str, Any]:
        return {"offset": page.offset + page.count, "total": page.total, "order": self.listing.order}


async def iter_order_pages(
    client: WebCommanderClient,
    *,
    page_size: int,
    concurrency: int,
    limit: int | None = None,
    keep_orders: bool = True,
) -> AsyncIterator[OrdersPage]:
    """The pages of one verified scan, for callers that need only the orders (tests, tools)."""
    scan = OrderScan(
        client, page_size=page_size, concurrency=concurrency, limit=limit, keep_orders=keep_orders
    )
    async for scanned in scan.pages():
        yield scanned.page


async def newest_orders(client: WebCommanderClient, n: int) -> list[dict[str, Any]]:
    """The ``n`` newest orders (by id), wherever the listing keeps them: the first page says which end
    that is, and what the host returns per page says how far each request reaches."""
    head = await client.orders_page(0, n)
    if head.count >= head.total:
        return head.orders
    numbers = _numbers(head.ids)
    if len(numbers) >= 2 and numbers[0] > numbers[-1]:  # newest first: the head is the newest
        orders, offset = list(head.orders), head.count
        while len(orders) < n and offset < head.total:
            page = await client.orders_page(offset, n - len(orders))
            if not page.count:
                break
            orders += page.orders
            offset += page.count
        return orders[:n]
    # Oldest first (or one order a page, which tells nothing): read back from the end.
    orders: list[dict[str, Any]] = []
    end, step = head.total, max(head.count, 1)
    while len(orders) < n and end > 0:
        start = max(end - min(step, n - len(orders)), 0)
        page = await client.orders_page(start, end - start)
        if not page.count:
            break
        if start + page.count < end:  # the host returned fewer: step by what it returns
            step = page.count
            continue
        orders = page.orders[: end - start] + orders
        end = start
    if len(numbers) < 2:  # the order is not known: the head may hold the newest after all
        orders += head.orders
    unique = {str(o.get("id")): o for o in orders if isinstance(o, dict)}
    return sorted(unique.values(), key=lambda o: _id_key(o.get("id")), reverse=True)[:n]


def _numbers(ids: tuple[str | None, ...]) -> list[int]:
    """A page's numeric ids, in listing order: what order detection and the repair reason about."""
    return [int(i) for i in ids if i is not None and i.isdigit()]


def _id_key(value: Any) -> tuple[int, str]:
    text = str(value)
    return (int(text), text) if text.isdigit() else (-1, text)


def _cut(page: OrdersPage, wanted: int | None) -> OrdersPage:
    if wanted is None:
        return page
    room = max(wanted - page.offset, 0)
    if room >= page.count:
        return page
    return replace(page, orders=page.orders[:room], ids=page.ids[:room], count=room)
