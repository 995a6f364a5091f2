"""The pure parts of write-back: what changed since an order's tracked state (echoes removed), and
whether an interrupted send already took effect on the target."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ordersync.models import Comment, Order, OrderStatus, Platform, Refund
from ordersync.operations import AddComment, CreateRefund, SetStatus, marker
from ordersync.writeback.effects import already_true, baseline_of, find_effect
from ordersync.writeback.observe import Observed, amount_sig, text_sig
from ordersync.writeback.tracking import InFlight, diff, expect_effect, state_of

T0 = datetime(2026, 11, 26, 10, tzinfo=UTC)


def _observed(**changes: object) -> Observed:
    base: dict[str, object] = {
        "order_id": "7",
        "status": "processing",
        "payment_status": "paid",
        "currency": "EUR",
        "created_at": T0,
        "updated_at": T0,
        "comments": [("c1", "hello", False)],
        "refunds": [],
        "payments": [("p1", Decimal("20.00"), "stripe")],
    }
    return Observed(**{**base, **changes})  # type: ignore[arg-type]


def test_an_unchanged_order_has_no_changes() -> None:
    state = state_of(_observed())
    changes, after = diff(state, _observed())
    assert not changes and after["comments"] == ["c1"]


def test_new_status_comment_and_refund_are_changes() -> None:
    state = state_of(_observed())
    now = _observed(
        status="completed",
        comments=[("c1", "hello", False), ("c2", "Left at door", True)],
        refunds=[("r1", Decimal("5.0000"), "broken")],
    )
    changes, after = diff(state, now)
    assert changes.status == ("processing", "completed")
    assert changes.comments == [("c2", "Left at door", True)]
    assert changes.refunds == [("r1", Decimal("5.0000"), "broken")]
    assert after["status"] == "completed" and after["refunds"] == ["r1"]


def test_effects_ordersync_wrote_come_back_as_echoes_once() -> None:
    state = state_of(_observed())
    expect_effect(state, "comment", text_sig("From the other shop"))
    expect_effect(state, "refund", amount_sig(Decimal("5")))
    now = _observed(
        comments=[("c1", "hello", False), ("c9", "From  the other shop", False)],  # whitespace differs
        refunds=[("r1", Decimal("5.0000"), None), ("r2", Decimal("5.0000"), None)],
    )
    changes, after = diff(state, now)
    assert changes.comments == []  # the echo
    assert changes.refunds == [("r2", Decimal("5.0000"), None)]  # one expectation, one echo only
    assert changes.echoes == 2 and after["expect"]["refund"] == [] and after["expect"]["comment"] == []


def test_a_change_equal_to_a_queued_write_is_not_routed_back() -> None:
    changes, _ = diff(
        state_of(_observed()), _observed(status="completed"), InFlight(statuses=frozenset({"completed"}))
    )
    assert not changes and changes.echoes == 1


def _order(**changes: object) -> Order:
    base: dict[str, object] = {
        "platform": Platform.WEBCOMMANDER,
        "shop": "wc",
        "external_id": "13",
        "status": OrderStatus.PROCESSING,
        "status_raw": "processing",
        "currency": "EUR",
        "created_at": T0,
        "subtotal": Decimal("20"),
        "total": Decimal("20"),
    }
    return Order(**{**base, **changes})  # type: ignore[arg-type]


def test_an_interrupted_refund_is_found_by_marker_or_as_a_new_refund_of_the_same_amount() -> None:
    op = CreateRefund(order_id="13", amount=Decimal("7.50"))
    before = _order(refunds=[Refund(external_id="r1", amount=Decimal("7.50"))])
    baseline = baseline_of(before)
    assert find_effect(op, before, baseline, marker("k")) is None  # the old 7.50 is not ours
    after = _order(refunds=[*before.refunds, Refund(external_id="r2", amount=Decimal("7.50"))])
    assert find_effect(op, after, baseline, marker("k")) == {"refund_id": "r2"}
    tagged = _order(refunds=[Refund(external_id="r5", amount=Decimal("7.50"), reason=f"x [{marker('k')}]")])
    assert find_effect(op, tagged, {"refunds": ["r5"]}, marker("k")) == {"refund_id": "r5"}


def test_comments_are_found_by_text_and_statuses_by_value() -> None:
    comment = AddComment(order_id="13", text="Packed")
    order = _order(comments=[Comment(external_id="c4", text="Packed")])
    assert find_effect(comment, order, {"comments": []}, "m") == {"comment_id": "c4"}
    assert find_effect(comment, order, {"comments": ["c4"]}, "m") is None
    assert already_true(SetStatus(order_id="13", value="processing"), order)
    assert not already_true(SetStatus(order_id="13", value="completed"), order)


def test_a_read_older_than_ordersyncs_write_forgets_nothing_it_knew() -> None:
    state = state_of(_observed())
    state["comments"].append("c9")  # the comment ordersync just wrote
    state["status"] = "completed"  # and the status
    state["stale_before"] = {"status": T0.isoformat()}
    stale = _observed(updated_at=T0)  # read before the write landed: no c9, old status
    changes, after = diff(state, stale)
    assert not changes and after["comments"] == ["c1", "c9"] and after["status"] == "completed"
    later = _observed(
        status="completed",
        updated_at=T0.replace(minute=5),
        comments=[("c1", "hello", False), ("c9", "x", False)],
    )
    changes, _ = diff(after, later)
    assert not changes  # its own write, seen at last: nothing to route back


def test_a_persons_change_of_the_other_field_is_not_hidden_by_the_floor() -> None:
    state = state_of(_observed())
    state["stale_before"] = {"payment_status": T0.isoformat()}
    changes, _ = diff(state, _observed(status="completed", updated_at=T0))
    assert changes.status == ("processing", "completed")
