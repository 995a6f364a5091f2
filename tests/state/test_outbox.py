"""The outbox, links, tracked states and conflicts on each backend: keys queue once, a claim is held
by one worker, a dead worker's claim is taken over, dead letters come back with `retry`."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import update

from ordersync.operations import AddComment, CreateRefund, SetStatus
from ordersync.state import links, outbox
from ordersync.state.store import StateStore
from ordersync.state.tables import outbox as outbox_table

LEASE = timedelta(minutes=5)


def _queue(store: StateStore, key: str, op: object, shop: str = "wc") -> int | None:
    with store.engine.begin() as connection:
        return outbox.enqueue(connection, key=key, shop=shop, op=op, origin="route")  # type: ignore[arg-type]


def test_a_key_is_queued_once_and_the_operation_round_trips(ready_store: StateStore) -> None:
    op = CreateRefund(order_id="7", amount=Decimal("12.50"), currency="EUR", reason="broken")
    first = _queue(ready_store, "woo/1/refund/9->wc", op)
    again = _queue(ready_store, "woo/1/refund/9->wc", op)
    assert first is not None and again is None
    (row,) = outbox.rows(ready_store)
    assert row.op == op and row.order_id == "7" and row.status == outbox.PENDING
    assert row.op.amount == Decimal("12.50")  # type: ignore[union-attr]


def test_a_claim_is_held_by_one_worker_until_it_finishes(ready_store: StateStore) -> None:
    _queue(ready_store, "a", SetStatus(order_id="1", value="completed"))
    _queue(ready_store, "b", SetStatus(order_id="2", value="completed"), shop="woo")
    (mine,) = outbox.claim(ready_store, lease=LEASE, limit=10, shops=["wc"])
    assert mine.key == "a" and mine.status == outbox.SENDING and mine.attempts == 1
    assert [r.key for r in outbox.claim(ready_store, lease=LEASE, limit=10)] == ["b"]  # a is held
    assert outbox.claim(ready_store, lease=LEASE, limit=10) == []
    with ready_store.engine.begin() as connection:
        outbox.complete(connection, mine.id, {"ids": {}})
    (row,) = outbox.rows(ready_store, ids=[mine.id])
    assert row.status == outbox.DONE and row.done_at is not None


def test_a_dead_workers_claim_is_taken_over_at_once_and_a_live_one_is_not(ready_store: StateStore) -> None:
    row_id = _queue(ready_store, "a", AddComment(order_id="1", text="hi"))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )

    with ready_store.engine.begin() as connection:
        connection.execute(
            update(outbox_table)
            .where(outbox_table.c.id == row_id)
            .values(
                status=outbox.SENDING,
                lease_until=datetime.now(UTC) + LEASE,
                claimed_by={"pid": int(dead.stdout), "host": socket.gethostname()},
                sent_at=datetime.now(UTC),
            )
        )
    (taken,) = outbox.claim(ready_store, lease=LEASE, limit=10)
    assert taken.id == row_id and taken.sent_at is not None  # so the taker looks for the effect first
    assert outbox.claim(ready_store, lease=LEASE, limit=10) == []  # now held by this live process


def test_failures_retry_then_dead_letter_and_retry_or_drop_bring_them_back(ready_store: StateStore) -> None:
    row_id = _queue(ready_store, "a", AddComment(order_id="1", text="hi"))
    assert row_id is not None
    outbox.claim(ready_store, lease=LEASE, limit=1)
    later = datetime.now(UTC) + timedelta(hours=1)
    assert outbox.fail(ready_store, row_id, "HTTP 503", retry_at=later) == outbox.PENDING
    assert outbox.claim(ready_store, lease=LEASE, limit=1) == []  # not due yet
    assert outbox.fail(ready_store, row_id, "gave up", retry_at=None) == outbox.DEAD
    assert outbox.retry(ready_store, None) == 1
    (row,) = outbox.claim(ready_store, lease=LEASE, limit=1)
    assert row.attempts == 1 and row.last_error == "gave up"
    outbox.fail(ready_store, row_id, "gave up again", retry_at=None)
    assert outbox.drop(ready_store, [row_id]) == 1
    assert outbox.retry(ready_store, [row_id]) == 0  # dropped is final


def test_links_work_from_either_side_and_tracked_states_upsert(ready_store: StateStore) -> None:
    with ready_store.engine.begin() as connection:
        links.add_link(connection, "woo", "40", "wc", "13")
        links.add_link(connection, "woo", "40", "wc", "99")  # one counterpart per shop: ignored
        links.save_state(connection, "wc", "13", {"status": "pending"})
        links.save_state(connection, "wc", "13", {"status": "completed"})
    with ready_store.engine.connect() as connection:
        assert links.counterpart(connection, "woo", "40", "wc") == "13"
        assert links.counterpart(connection, "wc", "13", "woo") == "40"
        assert links.linked_orders(connection, "wc") == {"13": {"woo": "40"}}
        assert links.tracked_states(connection, "wc", ["13", "14"]) == {"13": {"status": "completed"}}


def test_a_shop_whose_orders_wait_does_not_starve_another_shops_writes(ready_store: StateStore) -> None:
    _queue(ready_store, "first", AddComment(order_id="1", text="a"), shop="wc")
    (head,) = outbox.claim(ready_store, lease=LEASE, limit=1)
    outbox.fail(ready_store, head.id, "HTTP 503", retry_at=datetime.now(UTC) + timedelta(hours=1))
    for n in range(40):  # all behind the first, on the same order
        _queue(ready_store, f"behind-{n}", AddComment(order_id="1", text=f"b{n}"), shop="wc")
    _queue(ready_store, "other", SetStatus(order_id="9", value="completed"), shop="woo")
    assert [r.key for r in outbox.claim(ready_store, lease=LEASE, limit=10)] == ["other"]


def test_retry_does_not_revive_a_status_change_a_newer_one_followed(ready_store: StateStore) -> None:
    old = _queue(ready_store, "old", SetStatus(order_id="1", value="on-hold"))
    new = _queue(ready_store, "new", SetStatus(order_id="1", value="completed"))
    comment = _queue(ready_store, "note", AddComment(order_id="1", text="hi"))
    assert old is not None and new is not None and comment is not None
    for row_id in (old, comment):
        outbox.fail(ready_store, row_id, "gave up", retry_at=None)
    with ready_store.engine.begin() as connection:
        outbox.complete(connection, new, {"ids": {}})
    assert outbox.retry(ready_store, None) == 1
    statuses = {r.key: r.status for r in outbox.rows(ready_store)}
    assert statuses == {"old": outbox.SUPERSEDED, "new": outbox.DONE, "note": outbox.PENDING}
