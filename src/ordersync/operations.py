"""Canonical write operations: what ordersync asks a shop to do, in no platform's words.

Routes, the ``ordersync push`` command and the outbox speak only these; each platform's writer turns
one into its own API calls. An operation names the *target* shop's order id and, where a platform
value is needed (a status), that shop's own value, resolved beforehand through
``mappings/statuses.yaml`` so writers never guess.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ordersync.models import LineItem, Money, Order, OrderStatus, PaymentStatus, RefundLine, UtcDatetime


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    order_id: str = Field(min_length=1, description="the order in the target shop")


class SetStatus(_Op):
    kind: Literal["set_status"] = "set_status"
    value: str = Field(min_length=1, description="the target shop's own status value")
    status: OrderStatus | None = Field(None, description="the canonical status, for echo and conflicts")


class SetPaymentStatus(_Op):
    kind: Literal["set_payment_status"] = "set_payment_status"
    value: str = Field(min_length=1, description="the target shop's own payment status value")
    status: PaymentStatus | None = None


class AddComment(_Op):
    kind: Literal["add_comment"] = "add_comment"
    text: str = Field(min_length=1)
    customer_visible: bool = False


class CreateRefund(_Op):
    """A refund of ``amount`` (positive) in ``currency``; ``lines`` name the target's line ids."""

    kind: Literal["create_refund"] = "create_refund"
    amount: Money = Field(gt=0)
    currency: str | None = Field(None, min_length=3, max_length=3)
    reason: str | None = None
    lines: list[RefundLine] = Field(default_factory=list)
    payment_id: str | None = Field(None, description="the target payment to refund (WebCommander)")


class RecordPayment(_Op):
    kind: Literal["record_payment"] = "record_payment"
    amount: Money = Field(gt=0)
    currency: str | None = Field(None, min_length=3, max_length=3)
    gateway: str | None = None
    paid_at: UtcDatetime | None = None
    transaction_id: str | None = None


class CancelOrder(_Op):
    kind: Literal["cancel_order"] = "cancel_order"


class SendInvoice(_Op):
    kind: Literal["send_invoice"] = "send_invoice"
    notes: str | None = None
    payment_status: str | None = None


class CreateOrder(BaseModel):
    """Replicate ``order`` (the source shop's, canonical) into the target shop.

    ``product_ids`` maps a source product id (what was sold: the variation's id for a variation, or
    the product's) and ``products`` a source SKU to a target product id; a line in neither is looked
    up by SKU on the target where the platform can (WooCommerce). WebCommander lines carry a product
    id and no SKU, so an order from WebCommander needs ``product_ids``. A line that resolves to nothing
    makes the writer refuse the whole order: nothing half-made is created. ``order`` is filled in by
    the outbox just before sending, from the source shop, when the route queued only the reference."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["create_order"] = "create_order"
    source_shop: str
    source_order_id: str
    order: Order | None = None
    products: dict[str, str] = Field(default_factory=dict)
    product_ids: dict[str, str] = Field(default_factory=dict)

    def mapped_product(self, line: LineItem) -> tuple[str, str] | None:
        """(the target product the route names for ``line``, how the route named it), or None.

        What was sold first (a variation's own id), then the SKU; a variable product's id only for a
        line that is no variation: mapping the parent would turn every size into one product."""
        sold = line.sold_product_id or (line.product_id if not line.variation_id else None)
        if sold and sold in self.product_ids:
            return self.product_ids[sold], f"product id {sold}"
        if line.sku and line.sku in self.products:
            return self.products[line.sku], f"SKU {line.sku!r}"
        return None

    @staticmethod
    def source_names(line: LineItem) -> str:
        """How a line's product is named in a refusal: its SKU and its source product id."""
        sku = f"SKU {line.sku!r}" if line.sku else "no SKU"
        source_id = line.sold_product_id or line.product_id
        return f"{sku}, product id {source_id}" if source_id else sku


Operation = Annotated[
    SetStatus
    | SetPaymentStatus
    | AddComment
    | CreateRefund
    | RecordPayment
    | CancelOrder
    | SendInvoice
    | CreateOrder,
    Field(discriminator="kind"),
]


def marker(idempotency_key: str) -> str:
    """The short tag a writer leaves on the target (refund reason, order meta, Idempotency-Key header)
    so a later attempt can find an effect an earlier, interrupted attempt already had."""
    return "ordersync-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]


class OperationRejected(Exception):
    """The target cannot or must not take this operation (unknown SKU, refund over what remains,
    another currency, a status the shop does not know): dead-lettered at once, never retried."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Applied(BaseModel):
    """What a write produced on the target: the ids it created (an order, a comment, a refund)."""

    model_config = ConfigDict(extra="forbid")

    ids: dict[str, str] = Field(default_factory=dict)
    found: bool = Field(False, description="an earlier attempt's effect was found instead of sending")
    at: datetime | None = None
    created: Order | None = Field(
        None,
        exclude=True,  # kept in memory only: the outbox records the ids
        description="an order created, as the shop's answer to the creation showed it: its state before "
        "anyone could change it, which a later read cannot tell",
    )


def decimal_str(value: Decimal) -> str:
    """Money as the plain string APIs take ("12.50"), never through float."""
    return format(value, "f")


def stamped(op: Operation) -> Operation:
    """A payment without a time gets the time it was queued: WebCommander's make-order-payment
    always carries a ``date``, and a resend must carry the same one, so it is fixed here, once."""
    if isinstance(op, RecordPayment) and op.paid_at is None:
        return op.model_copy(update={"paid_at": datetime.now(UTC).replace(microsecond=0)})
    return op
