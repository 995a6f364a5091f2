"""The sandbox shop's orders as WooCommerce keeps them, and the arithmetic WooCommerce does on them.

Prices exclude tax; tax is computed per line and per rate from the shipping country and rounded per
line (half up, two decimals), and tax lines sum the rounded line taxes, so every order satisfies
``total = Σ line totals + shipping + fees + cart tax + shipping tax`` exactly, as real shops do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

from ordersync.sandbox.woocommerce.catalog import COUPONS, TAX_CLASSES, Product, rates_for, shipping_rates_for

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def tax_of(amount: Decimal, percent: Decimal) -> Decimal:
    return cents(amount * percent / 100)


@dataclass
class Line:
    id: int
    product: Product
    quantity: int
    subtotal: Decimal = ZERO
    total: Decimal = ZERO
    subtotal_taxes: dict[int, Decimal] = field(default_factory=dict)
    taxes: dict[int, Decimal] = field(default_factory=dict)
    meta: list[tuple[int, str, str]] = field(default_factory=list)
    """(meta id, key, value)."""

    @property
    def tax(self) -> Decimal:
        return sum(self.taxes.values(), ZERO)

    @property
    def subtotal_tax(self) -> Decimal:
        return sum(self.subtotal_taxes.values(), ZERO)


@dataclass
class ShippingLine:
    id: int
    method_id: str
    method_title: str
    total: Decimal
    taxes: dict[int, Decimal] = field(default_factory=dict)


@dataclass
class FeeLine:
    id: int
    name: str
    total: Decimal
    taxes: dict[int, Decimal] = field(default_factory=dict)


@dataclass
class CouponLine:
    id: int
    code: str
    meta_id: int
    discount: Decimal = ZERO
    discount_tax: Decimal = ZERO


@dataclass
class RefundLine:
    """A refunded item; WooCommerce makes it of the refunded item's own type (product, shipping or
    fee), so the refund lists it under ``line_items``, ``shipping_lines`` or ``fee_lines``."""

    id: int
    line: Line | ShippingLine | FeeLine
    quantity: int
    total: Decimal
    taxes: dict[int, Decimal]
    meta_id: int


@dataclass
class Refund:
    id: int
    created: datetime
    amount: Decimal
    reason: str
    lines: list[RefundLine]
    tax_line_ids: dict[int, int]
    meta_id: int
    full: bool
    meta: list[tuple[int, str, Any]] = field(default_factory=list)
    """(meta id, key, value) sent as ``meta_data`` with the refund, after ``_refund_type``."""

    @property
    def tax(self) -> Decimal:
        return sum((t for line in self.lines for t in line.taxes.values()), ZERO)


@dataclass
class Note:
    id: int
    created: datetime
    text: str
    customer_note: bool
    author: str = "WooCommerce"


@dataclass
class Order:
    id: int
    status: str
    created: datetime
    modified: datetime
    customer_id: int
    billing: dict[str, str]
    shipping: dict[str, str]
    payment_method: str
    payment_method_title: str
    order_key: str
    currency: str
    lines: list[Line]
    shipping_lines: list[ShippingLine] = field(default_factory=list)
    fees: list[FeeLine] = field(default_factory=list)
    coupons: list[CouponLine] = field(default_factory=list)
    tax_line_ids: dict[int, int] = field(default_factory=dict)
    refunds: list[Refund] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    meta: list[tuple[int, str, Any]] = field(default_factory=list)
    paid: datetime | None = None
    completed: datetime | None = None
    transaction_id: str = ""
    customer_note: str = ""
    created_via: str = "checkout"
    customer_ip: str = ""
    user_agent: str = ""
    previous_status: str | None = None
    """The status before trashing, restored by untrash."""

    # Order-level sums, kept beside the lines they come from (see ``price``).
    @property
    def cart_tax(self) -> Decimal:
        return sum((line.tax for line in self.lines), ZERO) + sum(
            (sum(f.taxes.values(), ZERO) for f in self.fees), ZERO
        )

    @property
    def shipping_total(self) -> Decimal:
        return sum((s.total for s in self.shipping_lines), ZERO)

    @property
    def shipping_tax(self) -> Decimal:
        return sum((t for s in self.shipping_lines for t in s.taxes.values()), ZERO)

    @property
    def total_tax(self) -> Decimal:
        return self.cart_tax + self.shipping_tax

    @property
    def discount_total(self) -> Decimal:
        return sum((line.subtotal - line.total for line in self.lines), ZERO)

    @property
    def discount_tax(self) -> Decimal:
        return sum((line.subtotal_tax - line.tax for line in self.lines), ZERO)

    @property
    def subtotal(self) -> Decimal:
        return sum((line.subtotal for line in self.lines), ZERO)

    @property
    def total(self) -> Decimal:
        return (
            sum((line.total for line in self.lines), ZERO)
            + sum((f.total for f in self.fees), ZERO)
            + self.shipping_total
            + self.total_tax
        )

    @property
    def refunded(self) -> Decimal:
        return sum((r.amount for r in self.refunds), ZERO)

    def tax_rows(self) -> list[tuple[int, Decimal, Decimal]]:
        """(rate id, cart tax, shipping tax) per rate used, in rate order."""
        cart: dict[int, Decimal] = {}
        ship: dict[int, Decimal] = {}
        for line in self.lines:
            for rate, amount in line.taxes.items():
                cart[rate] = cart.get(rate, ZERO) + amount
        for fee in self.fees:
            for rate, amount in fee.taxes.items():
                cart[rate] = cart.get(rate, ZERO) + amount
        for s in self.shipping_lines:
            for rate, amount in s.taxes.items():
                ship[rate] = ship.get(rate, ZERO) + amount
        return [(rate, cart.get(rate, ZERO), ship.get(rate, ZERO)) for rate in sorted(set(cart) | set(ship))]


def price(order: Order) -> None:
    """Recompute line totals, discounts and taxes from products, quantities, coupons and the address."""
    country = order.shipping.get("country") or order.billing.get("country") or ""
    for line in order.lines:
        line.subtotal = cents(line.product.price * line.quantity)
        line.total = line.subtotal
    for coupon in order.coupons:
        _apply_coupon(order, coupon)
    for line in order.lines:
        rates = rates_for(country, line.product.tax_class)
        line.subtotal_taxes = {r.id: tax_of(line.subtotal, r.percent) for r in rates}
        line.taxes = {r.id: tax_of(line.total, r.percent) for r in rates}
    for coupon in order.coupons:
        coupon.discount_tax = sum(
            (line.subtotal_tax - line.tax for line in order.lines if line.subtotal != line.total), ZERO
        )
    shipping_rates = shipping_rates_for(country, shipping_tax_class(order))
    for s in order.shipping_lines:
        s.taxes = {r.id: tax_of(s.total, r.percent) for r in shipping_rates}
    for fee in order.fees:
        fee.taxes = {r.id: tax_of(fee.total, r.percent) for r in rates_for(country, "")}


def shipping_tax_class(order: Order) -> str | None:
    """Shipping takes its tax class from the order's lines ("inherit", as WC_Abstract_Order computes
    it): the first of the shop's classes, standard first, that any line has; None without lines. A DE
    order of only reduced-rate books ships untaxed, as 7 % does not apply to shipping."""
    classes = {line.product.tax_class for line in order.lines}
    for slug in TAX_CLASSES:
        if slug in classes:
            return slug
    return None


def _apply_coupon(order: Order, line_coupon: CouponLine) -> None:
    coupon = COUPONS[line_coupon.code]
    discounts: list[Decimal] = []
    if coupon.kind == "percent":
        discounts = [cents(line.total * coupon.amount / 100) for line in order.lines]
    elif coupon.kind == "fixed_product":
        discounts = [
            min(line.total, coupon.amount * line.quantity) if line.product.sku == coupon.product_sku else ZERO
            for line in order.lines
        ]
    else:
        base = sum((line.total for line in order.lines), ZERO)
        amount = min(coupon.amount, base)
        discounts = [
            (amount * line.total / base).quantize(CENT, rounding=ROUND_DOWN) if base else ZERO
            for line in order.lines
        ]
        left = amount - sum(discounts, ZERO)
        for i, line in enumerate(order.lines):  # the cents lost to rounding go to the first lines with room
            if left <= 0:
                break
            if line.total - discounts[i] >= CENT:
                discounts[i] += CENT
                left -= CENT
    for line, discount in zip(order.lines, discounts, strict=True):
        line.total -= discount
    line_coupon.discount = sum(discounts, ZERO)
