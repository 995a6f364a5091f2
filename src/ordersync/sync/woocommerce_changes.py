"""WooCommerce's incremental sync: what changed since the cursor, what was trashed, and new notes.

The cursor is the newest ``date_modified_gmt`` the mirror holds (never later than the time the run
started, so a shop clock running ahead cannot push it past changes still to come) plus the edge: the
orders modified within ``sync_overlap`` seconds before it, with their ``date_modified``. Each run lists
``modified_after`` the cursor minus the overlap, so orders modified in the cursor's own second, or
stamped by a clock a few seconds behind ours, are listed again; orders whose stamp matches the edge are
dropped before any refund or note is fetched for them (a closed range, de-duplicated). Only settled
stamps join the edge: a stamp in the second the shop answered (its ``Date``) could be followed by
another change in that same second with the same stamp, so such an order is read again next run.

The window is read in id order by offset, each page overlapping the previous one by an order: an order
leaving the window mid-run moves the later ones up, and the overlap shows when one may have been
passed over; the cursor then stays put and the next run lists the window again.

``status=any`` leaves out trashed orders, so a second pass lists ``status=trash`` over the same window:
a trashed order becomes ``deleted`` in the mirror instead of staying as it was.

A new note leaves ``date_modified`` alone, so notes of open orders (not in a final status, or modified
in the last ``notes_refresh_days``) are read again each run, ``detail_concurrency`` at a time; an order
whose note ids differ from the comments of its recorded version (the state store's, not the mirror's)
is read again whole.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import structlog

from ordersync.aio import cancel_and_wait
from ordersync.errors import NotFoundError
from ordersync.platforms.woocommerce.client import ListPage, OrderFilters, public_url
from ordersync.state import versions
from ordersync.state.store import StateStore
from ordersync.sync.sources import RawPage, WooCommerceSource

log = structlog.get_logger("ordersync.woocommerce.sync")

FINAL_STATUSES = ("completed", "cancelled", "refunded", "failed", "deleted")
"""Canonical statuses after which an order rarely gets notes; younger orders are re-read anyway."""


def _order_id(order: dict[str, Any]) -> int | None:
    try:
        return int(order.get("id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def modified_at(order: dict[str, Any], version: str) -> datetime | None:
    """``date_modified_gmt`` (v3, naive UTC) or ``updated_at`` (legacy, with ``Z``)."""
    raw = order.get("date_modified_gmt" if version == "v3" else "updated_at")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class WooCommerceChanges:
    """One incremental run's pages; ``next_cursor()`` once they are all written."""

    def __init__(
        self,
        source: WooCommerceSource,
        cursor: dict[str, Any],
        *,
        store: StateStore,
        run_start: datetime,
    ):
        self.source = source
        self.shop = source.shop
        self.client = source.client
        self.store = store
        self.run_start = run_start
        self.overlap = timedelta(seconds=self.shop.sync_overlap)
        self.cursor = datetime.fromisoformat(cursor["modified"])
        self.edge: dict[str, str] = dict(cursor.get("edge") or {})
        self.listed: dict[str, datetime] = {}
        self.stamps: dict[str, str] = {}
        self.settled: set[str] = set()
        self.fresh: set[str] = set()
        """Orders read whole this run (listed and not in the edge): their notes are current."""
        self.shifted = False
        self.details: dict[str, Any] = {"edge_skipped": 0, "listed": 0}

    # -- changed and trashed orders ------------------------------------------------------------------
    def _passes(self) -> list[tuple[str, ...]]:
        statuses = tuple(self.shop.statuses)
        if "trash" in statuses:
            return [statuses]
        return [statuses, ("trash",)] if "any" in statuses else [statuses]

    async def pages(self) -> AsyncIterator[RawPage]:
        after = self.cursor - self.overlap
        for statuses in self._passes():
            filters = OrderFilters(statuses=statuses, modified_after=after, orderby="id", order="asc")
            async for page in self.source.with_details(self._new_only(self._window(filters))):
                yield page
        if self.shop.notes == "all" and self.shop.notes_refresh == "open":
            async for page in self.source.with_details(self._notes_changed()):
                yield page

    async def targeted(self, keys: list[str]) -> AsyncIterator[RawPage]:
        """Just these orders (a webhook named them), with their refunds and notes: listed by id, in
        the trash too (a deletion is a move to the trash), as a poll would read them."""

        async def lists() -> AsyncIterator[ListPage]:
            # The poll's own statuses (and its trash pass), 100 ids a request at most (WooCommerce's
            # per_page limit); the legacy API reads them one by one.
            passes = self._passes() if self.client.version == "v3" else [("any",)]
            for start in range(0, len(keys), 100):
                for statuses in passes:
                    yield await self._reread(keys[start : start + 100], statuses)

        self.details["targeted"] = len(keys)
        async for page in self.source.with_details(lists()):
            yield page

    async def _window(self, filters: OrderFilters) -> AsyncIterator[ListPage]:
        """The window's pages in id order, each starting on the previous page's last order.

        Pages are read one after another by offset, overlapping by one order. An order that leaves
        the window while it is read (trashed, deleted) moves every later order up one place, and
        page numbers would pass one over unseen; the overlap shows it: the next page then starts
        after the order it should start on. The run goes on, but its cursor stays where it was, so
        the next run lists the same window again. Orders entering the window (new ones, or changed
        during the run) only repeat an order, which is harmless.
        """
        size = max(self.shop.page_size, 2)
        offset, last_id = 0, None
        while True:
            page = await self.client.orders_page(None, size, replace(filters, offset=offset))
            orders = page.orders[: page.count]
            if last_id is not None and orders:
                first = _order_id(orders[0])
                if first == last_id:
                    orders = orders[1:]  # the overlap, already read
                elif first is None or first > last_id:
                    self.shifted = True
                    log.warning("woocommerce.window_shifted", shop=self.shop.name, offset=offset)
            if orders:
                last_id = _order_id(orders[-1])
            yield replace(page, orders=orders, count=len(orders))
            if page.count < size:
                return
            offset += size - 1

    async def _new_only(self, lists: AsyncIterator[ListPage]) -> AsyncIterator[ListPage]:
        async for page in lists:
            kept = []
            for order in page.orders[: page.count]:
                key = str(order.get("id"))
                stamp = order.get("date_modified_gmt" if self.client.version == "v3" else "updated_at")
                when = modified_at(order, self.client.version)
                self.details["listed"] += 1
                if when is not None:
                    self.listed[key] = when
                    self.stamps[key] = str(stamp)
                    if page.server_time is not None and when < page.server_time.replace(microsecond=0):
                        self.settled.add(key)
                if self.edge.get(key) == stamp and stamp is not None:
                    self.details["edge_skipped"] += 1
                    continue
                kept.append(order)
                self.fresh.add(key)
            yield replace(page, orders=kept, count=len(kept), body=self._wrap(kept))

    def _wrap(self, orders: list[dict[str, Any]]) -> bytes:
        key = self.client.orders_key
        return orjson.dumps({key: orders} if key else orders)

    def next_cursor(self) -> dict[str, Any]:
        """The cursor once every page is in the mirror: the newest stamp seen, capped at the run's
        start, with the orders inside the overlap before it."""
        newest = max(self.listed.values(), default=self.cursor)
        moved = self.cursor if self.shifted else max(self.cursor, min(newest, self.run_start))
        floor = moved - self.overlap
        edge = {
            key: self.stamps[key]
            for key, when in self.listed.items()
            if when >= floor and key in self.settled
        }
        # Edge entries not listed again this run keep their place while still inside the window.
        for key, stamp in self.edge.items():
            if key not in self.listed and key in self.edge:
                when = modified_at({"date_modified_gmt": stamp, "updated_at": stamp}, self.client.version)
                if when is not None and when >= floor:
                    edge.setdefault(key, stamp)
        return {"modified": moved.isoformat(), "edge": edge}

    # -- notes of open orders ------------------------------------------------------------------------
    async def _notes_changed(self) -> AsyncIterator[ListPage]:
        """Open orders whose notes differ from the comments of their recorded versions, listed again
        for the usual refund and note requests (one more notes request each for the few that changed)."""
        started = time.perf_counter()
        since = (
            self.run_start - timedelta(days=self.shop.notes_refresh_days)
            if self.shop.notes_refresh_days
            else None
        )
        open_orders = await asyncio.to_thread(
            versions.open_orders,
            self.store,
            "woocommerce",
            self.shop.name,
            final_statuses=FINAL_STATUSES,
            modified_since=since,
        )
        wanted = {key: ids for key, ids in open_orders.items() if key not in self.fresh}

        async def notes_of(key: str) -> tuple[str, list[dict[str, Any]] | None]:
            async with self.source.gate.slot():
                try:
                    return key, await self.client.notes(key)
                except NotFoundError:
                    return key, None  # deleted for good; a scan of the whole shop would say so

        tasks = [asyncio.create_task(notes_of(key)) for key in wanted]
        try:
            fetched = await asyncio.gather(*tasks)
        except BaseException:
            await cancel_and_wait(tasks)
            raise
        changed = {
            key: notes
            for key, notes in fetched
            if notes is not None and {str(n.get("id")) for n in notes} != set(wanted[key])
        }
        self.details |= {
            "notes_checked": len(wanted),
            "notes_changed": len(changed),
            "notes_seconds": round(time.perf_counter() - started, 3),
        }
        log.info(
            "woocommerce.notes_refresh",
            shop=self.shop.name,
            **{k: self.details[k] for k in ("notes_checked", "notes_changed", "notes_seconds")},
        )
        keys = sorted(changed, key=int)
        for start in range(0, len(keys), self.shop.page_size):
            yield await self._reread(keys[start : start + self.shop.page_size])

    async def _reread(self, keys: list[str], statuses: tuple[str, ...] = ("any",)) -> ListPage:
        """These orders as a list page: one request on v3 (in ``statuses``), one per order on the
        legacy API (whatever their status)."""
        if self.client.version == "v3":
            filters = OrderFilters(statuses=statuses, include=tuple(int(k) for k in keys), orderby="id")
            return await self.client.orders_page(1, len(keys), filters)
        orders = []
        for key in keys:
            try:
                orders.append(await self.client.order(key))
            except NotFoundError:
                log.warning("woocommerce.order_gone", shop=self.shop.name, order_id=key)
        return ListPage(
            page=1,
            per_page=len(keys),
            total=len(orders),
            total_pages=1,
            count=len(orders),
            body=self._wrap(orders),
            orders=orders,
            url=public_url(httpx.URL(f"{self.shop.base_url}{self.client.prefix}/orders")),
        )
