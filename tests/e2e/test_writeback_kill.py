"""A refund is applied once even when the process applying it is SIGKILLed: before it sent anything,
while the request was in flight, and after the shop applied it but before the answer arrived."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ordersync.state import outbox
from ordersync.writeback.drain import Drainer
from ordersync.writeback.routing import route_shop
from ordersync.writeback.service import open_writers
from tests.e2e.test_writeback import _replicated
from tests.e2e.writeback_shops import serve_shops

HOLD = 3.0


class Hold:
    """In front of the WebCommander sandbox: holds one kind of request so a test can kill the client
    at a chosen point. ``before`` holds it before the shop sees it (the shop still applies it after
    the client is gone); ``after`` lets the shop apply it and holds the answer."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.when = "after"
        self.received = threading.Event()
        self.applied = threading.Event()
        self.app: Any = None

    def wrap(self, app: Any) -> Hold:
        self.app = app
        return self

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        path = self.path
        if (
            scope["type"] != "http"
            or path is None
            or path not in scope["path"] + "?" + scope["query_string"].decode()
        ):
            await self.app(scope, receive, send)
            return
        body: list[dict[str, Any]] = []
        while not body or body[-1].get("more_body"):
            body.append(await receive())  # the whole request has arrived: only its answer is pending
        self.received.set()
        if self.when == "before":
            await asyncio.sleep(HOLD)
        messages: list[dict[str, Any]] = []

        async def replay() -> dict[str, Any]:
            return body.pop(0) if body else {"type": "http.disconnect"}

        async def keep(message: dict[str, Any]) -> None:
            messages.append(message)

        await self.app(scope, replay, keep)
        self.applied.set()
        if self.when == "after":
            await asyncio.sleep(HOLD)
        for message in messages:
            try:
                await send(message)
            except Exception:
                return


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _drain_and_kill(config: Path, hold: Hold, *, after_apply: bool) -> None:
    """`ordersync outbox drain` in a process of its own, killed with -9 once the held request reached
    the shop (or, ``after_apply``, once the shop applied it)."""
    drain = subprocess.Popen(
        [sys.executable, "-m", "ordersync.cli", "outbox", "drain", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if after_apply:
            _wait(hold.applied.is_set, "the shop to apply the request")
        else:
            _wait(hold.received.is_set, "the request to reach the shop")
        drain.kill()
        drain.wait(10)
    finally:
        if drain.poll() is None:
            drain.kill()


@pytest.mark.parametrize("kill_point", ["before_sending", "in_flight", "applied_unanswered"])
def test_a_partial_refund_is_applied_exactly_once_when_the_process_is_killed(
    tmp_path: Path, kill_point: str
) -> None:
    hold = Hold()
    gen = serve_shops(tmp_path, wc_wrap=hold.wrap)
    shops = next(gen)
    store = shops.store()
    try:
        shops.cycle(store)
        woo_id, wc_id = _replicated(shops, store)
        shops.woo.create_refund(woo_id, {"amount": "7.50", "reason": "Damaged mug", "api_refund": False})
        shops.sync(store)
        settings = shops.settings()
        route_shop(settings, store, settings.shop("woo"))
        pending = outbox.rows(store, statuses=[outbox.PENDING], shop="wc")
        assert len(pending) == 1, [(r.kind, r.key, r.last_error) for r in pending]
        (row,) = pending
        assert row.kind == "create_refund"

        if kill_point == "before_sending":
            hold.path, hold.when = f"/order?id={wc_id}", "after"  # the fetch that comes before a send
        else:
            hold.path, hold.when = "order-payment-refund", "before" if kill_point == "in_flight" else "after"
        _drain_and_kill(shops.write_config(), hold, after_apply=kill_point == "applied_unanswered")
        if kill_point == "in_flight":
            _wait(hold.applied.is_set, "the shop to apply the request the dead process sent")
        (claimed,) = outbox.rows(store, ids=[row.id])
        assert claimed.status == outbox.SENDING  # the dead process's claim
        assert (claimed.sent_at is None) == (kill_point == "before_sending")
        hold.path = None

        async def resume() -> Any:
            async with open_writers(settings) as writers:
                return await Drainer(settings, store, writers).drain()

        asyncio.run(resume())  # the next run takes over the dead process's claim at once
        (done,) = outbox.rows(store, ids=[row.id])
        assert done.status == outbox.DONE, done.last_error
        assert (done.result or {}).get("found", False) is (kill_point != "before_sending")
        refunds = shops.wc_refunds(wc_id)
        assert [Decimal(str(r["amount"])) for r in refunds] == [Decimal("7.50")]
        shops.cycle(store)
        shops.cycle(store)
        assert len(shops.wc_refunds(wc_id)) == 1
        assert len(shops.woo.get(woo_id).refunds) == 1
    finally:
        store.dispose()
        gen.close()


@pytest.mark.parametrize("replays", [False, True], ids=["searched", "replayed"])
@pytest.mark.parametrize("kill_point", ["in_flight", "applied_unanswered"])
def test_a_replication_is_created_exactly_once_when_the_process_is_killed(
    tmp_path: Path, kill_point: str, replays: bool
) -> None:
    """The order-create went out and the process died: the next drain finds the order it made, or,
    on a shop configured as replaying Idempotency-Keys, resends and gets the first answer back; it
    links that order, and nothing is created twice."""
    hold = Hold()
    gen = serve_shops(tmp_path, wc_wrap=hold.wrap)
    shops = next(gen)
    shops.wc_options = {"idempotency_keys": replays}
    store = shops.store()
    try:
        shops.cycle(store)
        before = len(shops.wc.listed_ids())
        woo_id = shops.new_woo_order(["SKU-001", "TSHIRT-S"])
        shops.sync(store)
        settings = shops.settings()
        route_shop(settings, store, settings.shop("woo"))
        (row,) = outbox.rows(store, statuses=[outbox.PENDING], shop="wc")
        assert row.kind == "create_order"
        hold.path, hold.when = "order-create", "before" if kill_point == "in_flight" else "after"
        _drain_and_kill(shops.write_config(), hold, after_apply=kill_point == "applied_unanswered")
        _wait(hold.applied.is_set, "the shop to create the order the dead process sent")
        hold.path = None
        # The shop changes the source order meanwhile: a new note, a status.
        shops.woo.add_note(woo_id, "Gift wrap, please", customer_note=True, author="Kim")

        async def resume() -> Any:
            async with open_writers(settings) as writers:
                return await Drainer(settings, store, writers).drain()

        sent = shops.wc_app.total_requests("order-create")
        asyncio.run(resume())
        (done,) = outbox.rows(store, ids=[row.id])
        assert done.status == outbox.DONE, done.last_error
        assert len(shops.wc.listed_ids()) == before + 1
        # Searched: no second order-create. Replayed: one, answered with the first answer.
        assert shops.wc_app.total_requests("order-create") == sent + (1 if replays else 0)
        assert done.result.get("found", False) is not replays
        shops.cycle(store)
        shops.cycle(store)
        assert len(shops.wc.listed_ids()) == before + 1
    finally:
        store.dispose()
        gen.close()
