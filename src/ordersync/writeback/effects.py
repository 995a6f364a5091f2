"""Pure checks on a target order as fetched: did an interrupted send already take effect, is the
operation already true there, and what to remember before sending so that question has an answer."""

from __future__ import annotations

from typing import Any

from ordersync.models import Order, OrderStatus, PaymentStatus
from ordersync.operations import (
    AddComment,
    CancelOrder,
    CreateRefund,
    Operation,
    RecordPayment,
    SetPaymentStatus,
    SetStatus,
)


def baseline_of(order: Order) -> dict[str, Any]:
    """The ids already on the target before a send; anything new afterwards may be the send's effect."""
    return {
        "comments": [c.external_id for c in order.comments if c.external_id],
        "refunds": [r.external_id for r in order.refunds if r.external_id],
        "payments": [p.external_id for p in order.payments if p.external_id],
    }


def _same_status(op: SetStatus, order: Order) -> bool:
    if order.status_raw is not None and order.status_raw == op.value:
        return True
    return op.status is not None and op.status != OrderStatus.OTHER and order.status == op.status


def _same_payment_status(op: SetPaymentStatus, order: Order) -> bool:
    if order.payment_status_raw is not None and order.payment_status_raw == op.value:
        return True
    return op.status is not None and op.status != PaymentStatus.OTHER and order.payment_status == op.status


def already_true(op: Operation, order: Order) -> bool:
    """Idempotent operations whose result the target already shows need no request."""
    if isinstance(op, SetStatus):
        return _same_status(op, order)
    if isinstance(op, SetPaymentStatus):
        return _same_payment_status(op, order)
    if isinstance(op, CancelOrder):
        return order.status == OrderStatus.CANCELLED
    return False


def find_effect(op: Operation, order: Order, baseline: dict[str, Any], marker: str) -> dict[str, str] | None:
    """The ids of an earlier attempt's effect on ``order``, or None when it did not happen.

    A refund is recognised by its marker (in its meta, or in its reason on the legacy WooCommerce API
    and from versions that put it there), else as a refund not in the baseline with the same amount;
    comments by their text, payments by amount."""
    if isinstance(op, (SetStatus, SetPaymentStatus, CancelOrder)):
        return {} if already_true(op, order) else None
    if isinstance(op, AddComment):
        known = set(baseline.get("comments", []))
        for comment in order.comments:
            if comment.external_id not in known and comment.text.strip() == op.text.strip():
                return {"comment_id": comment.external_id} if comment.external_id else {}
        return None
    if isinstance(op, CreateRefund):
        for refund in order.refunds:
            if refund.marker == marker or (refund.reason and marker in refund.reason):
                return {"refund_id": refund.external_id} if refund.external_id else {}
        known = set(baseline.get("refunds", []))
        for refund in order.refunds:
            if refund.external_id not in known and refund.amount == op.amount:
                return {"refund_id": refund.external_id} if refund.external_id else {}
        return None
    if isinstance(op, RecordPayment):
        known = set(baseline.get("payments", []))
        for payment in order.payments:
            paid = payment.status == PaymentStatus.PAID
            if paid and payment.external_id not in known and payment.amount == op.amount:
                return {"payment_id": payment.external_id} if payment.external_id else {}
        return None
    return None  # an invoice leaves no trace on the order: it is sent again
