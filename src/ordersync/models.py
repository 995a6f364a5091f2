"""Canonical order schema shared by every platform.

Only these models cross between layers: extractors hand raw dicts to the mapper, the mapper returns
an :class:`Order`, and the mirror and writers consume orders. Money is ``Decimal`` rounded to the
currency's precision by the mapper; times are timezone-aware and normalised to UTC here, so no layer
downstream has to ask which zone a value is in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""An aware datetime stored in UTC; a naive one is refused rather than guessed."""


# Text limits: a record beyond them is malformed (a 200 KB customer name has been seen), so it is
# quarantined with the field's path instead of reaching the mirror. Checked in pydantic-core.
Code = Annotated[str, Field(max_length=255)]
"""Ids, SKUs, codes, phone numbers, postcodes, raw statuses."""
Name = Annotated[str, Field(max_length=1024)]
"""Names of people, products, methods; address lines."""
Email = Annotated[str, Field(max_length=320)]
"""RFC 5321's longest address."""
Text = Annotated[str, Field(max_length=65_536)]
"""Comments, notes, refund reasons, attribute values: up to 64 KB."""

Money = Annotated[Decimal, Field(allow_inf_nan=False)]
"""A finite Decimal; checked in pydantic-core, no Python callback per amount (there are dozens per order)."""


class Platform(StrEnum):
    WEBCOMMANDER = "webcommander"
    WOOCOMMERCE = "woocommerce"


class OrderStatus(StrEnum):
    """Lifecycle states both platforms can express; ``OTHER`` keeps custom statuses (see ``status_raw``)."""

    PENDING = "pending"
    PROCESSING = "processing"
    ON_HOLD = "on_hold"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    FAILED = "failed"
    DRAFT = "draft"
    DELETED = "deleted"
    OTHER = "other"


class PaymentStatus(StrEnum):
    UNPAID = "unpaid"
    PENDING = "pending"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    OTHER = "other"


class FulfilmentStatus(StrEnum):
    UNFULFILLED = "unfulfilled"
    PARTIALLY_FULFILLED = "partially_fulfilled"
    FULFILLED = "fulfilled"
    NOT_REQUIRED = "not_required"
    CANCELLED = "cancelled"
    OTHER = "other"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=False, use_enum_values=False)


class Address(_Model):
    """A postal address. Platforms give country and state as an id, a code or an object: all kept."""

    external_id: Code | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    company: Name | None = None
    line1: Name | None = None
    line2: Name | None = None
    city: Name | None = None
    postcode: Code | None = None
    state_code: Code | None = None
    state_name: Name | None = None
    state_id: Code | None = None
    country_code: Code | None = None
    country_name: Name | None = None
    country_id: Code | None = None
    email: Email | None = None
    phone: Code | None = None
    mobile: Code | None = None
    fax: Code | None = None


class Attribute(_Model):
    name: Name
    value: Text


class TaxAmount(_Model):
    """Tax of one rate on one line (WooCommerce's per-item ``taxes``)."""

    rate_id: Code
    total: Money
    subtotal: Money | None = None


class LineItem(_Model):
    """One product line. ``subtotal`` is before discounts, ``total`` after; both exclude tax.

    ``product_id`` is the product (a variable product's parent), ``variation_id`` the variation, and
    ``sold_product_id`` what was sold: the variation if there is one, else the product. The legacy
    WooCommerce API gives only the last: a variation's parent is then None, never the variation."""

    external_id: Code
    product_id: Code | None = None
    variation_id: Code | None = None
    sold_product_id: Code | None = None
    sku: Code | None = None
    name: Name | None = None
    quantity: Decimal
    unit_price: Money | None = None
    subtotal: Money
    total: Money
    tax: Money = Decimal(0)
    subtotal_tax: Money | None = None
    discount: Money = Decimal(0)
    tax_class: Code | None = None
    taxable: bool | None = None
    shippable: bool | None = None
    attributes: list[Attribute] = Field(default_factory=list)
    taxes: list[TaxAmount] = Field(default_factory=list)


class TaxLine(_Model):
    """Tax summed per rate for the whole order: ``tax_total`` on the cart (items and fees),
    ``shipping_tax_total`` on shipping, ``combined_total`` both. Each means the same whichever API fed
    it: the legacy WooCommerce API gives only the combined figure, so the split is known from it only
    where the order proves it (no shipping tax, or one rate only) and is None otherwise."""

    external_id: Code | None = None
    rate_id: Code | None = None
    code: Code | None = None
    label: Name | None = None
    rate_percent: Decimal | None = None
    compound: bool = False
    tax_total: Money | None = Decimal(0)
    shipping_tax_total: Money | None = Decimal(0)
    combined_total: Money | None = None


class ShippingLine(_Model):
    """``tax`` is None where the platform does not give it per line (legacy WooCommerce)."""

    external_id: Code | None = None
    method_id: Code | None = None
    method_title: Name | None = None
    total: Money = Decimal(0)
    tax: Money | None = Decimal(0)
    discount: Money = Decimal(0)


class FeeLine(_Model):
    external_id: Code | None = None
    name: Name
    total: Money = Decimal(0)
    tax: Money = Decimal(0)


class CouponLine(_Model):
    """``discount_tax`` is None where the platform does not give it (legacy WooCommerce)."""

    external_id: Code | None = None
    code: Code
    discount: Money = Decimal(0)
    discount_tax: Money | None = Decimal(0)


class Payment(_Model):
    external_id: Code | None = None
    gateway: Code | None = None
    gateway_name: Name | None = None
    amount: Money
    surcharge: Money = Decimal(0)
    status: PaymentStatus = PaymentStatus.OTHER
    status_raw: Code | None = None
    paid_at: UtcDatetime | None = None
    transaction_id: Code | None = None
    payer_info: Name | None = None


class RefundLine(_Model):
    """What one refunded item gave back. ``kind`` says which of the order's items it refunds, so a
    refund's lines (amount plus tax) add up to the refund wherever the shop says what was refunded."""

    kind: Literal["product", "shipping", "fee"] = "product"
    line_item_id: Code | None = None
    product_id: Code | None = None
    quantity: Decimal = Decimal(0)
    amount: Money = Decimal(0)
    tax: Money = Decimal(0)


class Refund(_Model):
    """Money returned to the customer; ``amount`` is positive whatever sign the platform uses."""

    external_id: Code | None = None
    amount: Money
    reason: Text | None = None
    created_at: UtcDatetime | None = None
    payment_id: Code | None = None
    gateway: Code | None = None
    refunded_by: Name | None = None
    lines: list[RefundLine] = Field(default_factory=list)
    marker: Code | None = None
    """The tag ordersync left on a refund it made, in the refund's meta where the API takes meta, so
    a retry finds the refund instead of refunding again; never shown to the customer."""


class Comment(_Model):
    external_id: Code | None = None
    text: Text
    author: Name | None = None
    customer_visible: bool = False
    by_admin: bool | None = None
    created_at: UtcDatetime | None = None


class Shipment(_Model):
    external_id: Code | None = None
    method: Code | None = None
    tracking: Text | None = None
    shipped_at: UtcDatetime | None = None
    item_ids: list[str] = Field(default_factory=list)


class Order(_Model):
    """One order as both platforms can describe it; the raw payload is kept beside it in the mirror."""

    platform: Platform
    shop: str
    external_id: Code
    number: Code | None = None
    status: OrderStatus
    status_raw: Code | None = None
    payment_status: PaymentStatus | None = None
    payment_status_raw: Code | None = None
    fulfilment_status: FulfilmentStatus | None = None
    fulfilment_status_raw: Code | None = None
    currency: str = Field(min_length=3, max_length=3)
    prices_include_tax: bool | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime | None = None
    paid_at: UtcDatetime | None = None
    completed_at: UtcDatetime | None = None
    customer_id: Code | None = None
    customer_name: Name | None = None
    customer_email: Email | None = None
    customer_note: Text | None = None
    channel: Code | None = None
    delivery_type: Code | None = None
    ip_address: Code | None = None
    billing: Address | None = None
    shipping: Address | None = None
    subtotal: Money
    discount_total: Money = Decimal(0)
    discount_tax: Money | None = Decimal(0)
    shipping_total: Money = Decimal(0)
    shipping_tax: Money = Decimal(0)
    fee_total: Money = Decimal(0)
    tax_total: Money = Decimal(0)
    total: Money
    paid_total: Money = Decimal(0)
    """Paid and not refunded, incl. tax; 0 when nothing is paid (one meaning on every platform)."""
    refunded_total: Money = Decimal(0)
    line_items: list[LineItem] = Field(default_factory=list)
    tax_lines: list[TaxLine] = Field(default_factory=list)
    shipping_lines: list[ShippingLine] = Field(default_factory=list)
    fee_lines: list[FeeLine] = Field(default_factory=list)
    coupon_lines: list[CouponLine] = Field(default_factory=list)
    payments: list[Payment] = Field(default_factory=list)
    refunds: list[Refund] = Field(default_factory=list)
    comments: list[Comment] = Field(default_factory=list)
    shipments: list[Shipment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _tax_figures(self) -> Order:
        """Fill in each tax line's figures that follow from the others and from the order."""
        for line in self.tax_lines:
            if line.tax_total is None and line.combined_total is not None and line.shipping_tax_total is None:
                if not self.shipping_tax:
                    line.tax_total, line.shipping_tax_total = line.combined_total, Decimal(0)
                elif len(self.tax_lines) == 1:
                    line.shipping_tax_total = self.shipping_tax
                    line.tax_total = line.combined_total - self.shipping_tax
            if line.combined_total is None and None not in (line.tax_total, line.shipping_tax_total):
                line.combined_total = line.tax_total + line.shipping_tax_total  # type: ignore[operator]
        return self
