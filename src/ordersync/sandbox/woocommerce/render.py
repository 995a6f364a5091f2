"""The shop's orders, refunds and notes in the JSON WooCommerce 11.0.1 sends: same keys, same order,
same types (money as strings, ``price`` as a float, ``rate_percent`` as a number, "" for absent).

``encode`` writes JSON the way PHP's ``json_encode`` does for the WordPress REST API: slashes escaped
(``https:\\/\\/``) and non-ASCII as ``\\uXXXX``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ordersync.sandbox.woocommerce.catalog import RATES
from ordersync.sandbox.woocommerce.model import (
    ZERO,
    FeeLine,
    Line,
    Note,
    Order,
    Refund,
    RefundLine,
    ShippingLine,
    cents,
)

VERSION = "11.0.1"
EPOCH = "1970-01-01T00:00:00Z"


def encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode()


def money(value: Decimal) -> str:
    return f"{value + 0:.2f}" if value else "0.00"  # never "-0.00"


def trimmed(value: Decimal) -> str:
    """``wc_format_decimal`` with trimming: "5", "2.5", "17.22"."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


class Renderer:
    """Renders for one shop: its timezone (``date_*`` fields are shop-local) and base URL."""

    def __init__(self, timezone: str, currency_symbol: str = "\u20ac"):
        self.zone = ZoneInfo(timezone)
        self.symbol = currency_symbol

    # ---- times -------------------------------------------------------------------------------
    def local(self, when: datetime | None) -> str | None:
        if when is None:
            return None
        return when.astimezone(self.zone).strftime("%Y-%m-%dT%H:%M:%S")

    @staticmethod
    def gmt(when: datetime | None) -> str | None:
        if when is None:
            return None
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")

    @staticmethod
    def zulu(when: datetime | None) -> str:
        if when is None:
            return EPOCH
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # ---- wc/v3 -------------------------------------------------------------------------------
    def v3_order(self, order: Order, base: str) -> dict[str, Any]:
        api = f"{base}/wp-json/wc/v3"
        open_status = order.status in ("pending", "failed")
        return {
            "id": order.id,
            "parent_id": 0,
            "status": order.status,
            "currency": order.currency,
            "version": VERSION,
            "prices_include_tax": False,
            "date_created": self.local(order.created),
            "date_modified": self.local(order.modified),
            "discount_total": money(order.discount_total),
            "discount_tax": money(order.discount_tax),
            "shipping_total": money(order.shipping_total),
            "shipping_tax": money(order.shipping_tax),
            "cart_tax": money(order.cart_tax),
            "total": money(order.total),
            "total_tax": money(order.total_tax),
            "customer_id": order.customer_id,
            "order_key": order.order_key,
            "billing": dict(order.billing),
            "shipping": dict(order.shipping),
            "payment_method": order.payment_method,
            "payment_method_title": order.payment_method_title,
            "transaction_id": order.transaction_id,
            "customer_ip_address": order.customer_ip,
            "customer_user_agent": order.user_agent,
            "created_via": order.created_via,
            "customer_note": order.customer_note,
            "date_completed": self.local(order.completed),
            "date_paid": self.local(order.paid),
            "cart_hash": "",
            "number": str(order.id),
            "meta_data": [{"id": i, "key": k, "value": v} for i, k, v in order.meta],
            "line_items": [self.v3_line(line) for line in order.lines],
            "tax_lines": [
                _tax_line(order.tax_line_ids.get(rate, 0), rate, cart, ship)
                for rate, cart, ship in order.tax_rows()
            ],
            "shipping_lines": [_shipping_line(s.id, s, s.total, s.taxes) for s in order.shipping_lines],
            "fee_lines": [_fee_line(f.id, f, f.total, f.taxes) for f in order.fees],
            "coupon_lines": [
                {
                    "id": c.id,
                    "code": c.code,
                    "discount": trimmed(c.discount),
                    "discount_tax": trimmed(c.discount_tax),
                    "meta_data": [
                        {
                            "id": c.meta_id,
                            "key": "coupon_info",
                            "value": coupon_info(c.code),
                            "display_key": "coupon_info",
                            "display_value": coupon_info(c.code),
                        }
                    ],
                    "discount_type": coupon_type(c.code),
                    "nominal_amount": number(coupon_amount(c.code)),
                    "free_shipping": False,
                }
                for c in order.coupons
            ],
            "refunds": [
                {"id": r.id, "reason": r.reason, "total": money(-r.amount), "total_tax": money(-r.tax)}
                for r in sorted(order.refunds, key=lambda r: (r.created, r.id), reverse=True)
            ],
            "payment_url": f"{base}/checkout/order-pay/{order.id}/?pay_for_order=true&key={order.order_key}",
            "is_editable": order.status in ("pending", "on-hold", "auto-draft"),
            "needs_payment": open_status,
            "needs_processing": any(not line.product.virtual for line in order.lines),
            "date_created_gmt": self.gmt(order.created),
            "date_modified_gmt": self.gmt(order.modified),
            "date_completed_gmt": self.gmt(order.completed),
            "date_paid_gmt": self.gmt(order.paid),
            "currency_symbol": self.symbol,
            "_links": {
                "self": [
                    {
                        "href": f"{api}/orders/{order.id}",
                        "targetHints": {"allow": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
                    }
                ],
                "collection": [{"href": f"{api}/orders"}],
                "email_templates": [
                    {"embeddable": True, "href": f"{api}/orders/{order.id}/actions/email_templates"}
                ],
                **(
                    {"customer": [{"href": f"{api}/customers/{order.customer_id}"}]}
                    if order.customer_id
                    else {}
                ),
            },
        }

    @staticmethod
    def v3_line(
        line: Line,
        *,
        sign: int = 1,
        quantity: int | None = None,
        refunded: int | None = None,
        meta_id: int = 0,
        total: Decimal | None = None,
        taxes: dict[int, Decimal] | None = None,
    ) -> dict[str, Any]:
        product = line.product
        qty = line.quantity if quantity is None else quantity
        line_total = line.total if total is None else total
        line_subtotal = line.subtotal if total is None else total
        line_taxes = line.taxes if taxes is None else taxes
        sub_taxes = line.subtotal_taxes if taxes is None else taxes
        meta = [
            {"id": i, "key": k, "value": v, "display_key": _display_key(product, k), "display_value": v}
            for i, k, v in line.meta
        ]
        if refunded is not None:
            meta = [
                {
                    "id": meta_id,
                    "key": "_refunded_item_id",
                    "value": str(refunded),
                    "display_key": "_refunded_item_id",
                    "display_value": str(refunded),
                }
            ]
        unit = float(line_total) / qty if qty else 0.0
        return {
            "id": line.id,
            "name": product.name,
            "product_id": product.parent_id or product.id,
            "variation_id": product.id if product.parent_id else 0,
            "quantity": qty * sign,
            "tax_class": product.tax_class,
            "subtotal": money(line_subtotal * sign),
            "subtotal_tax": money(sum(sub_taxes.values(), ZERO) * sign),
            "total": money(line_total * sign),
            "total_tax": money(sum(line_taxes.values(), ZERO) * sign),
            "taxes": [
                {"id": r, "total": money(t * sign), "subtotal": money(sub_taxes.get(r, t) * sign)}
                for r, t in line_taxes.items()
            ],
            "meta_data": meta,
            "sku": product.sku,
            "global_unique_id": "",
            "price": int(unit) if unit == int(unit) else unit,
            "image": {"id": 0 if product.parent_id else "", "src": ""},
            "parent_name": product.parent_name,
        }

    def v3_refund(self, order: Order, refund: Refund, base: str) -> dict[str, Any]:
        api = f"{base}/wp-json/wc/v3"
        cart: dict[int, Decimal] = {}
        ship: dict[int, Decimal] = {}
        for rl in refund.lines:
            into = ship if isinstance(rl.line, ShippingLine) else cart
            for rate, amount in rl.taxes.items():
                into[rate] = into.get(rate, ZERO) + amount
        return {
            "id": refund.id,
            "date_created": self.local(refund.created),
            "date_created_gmt": self.gmt(refund.created),
            "amount": money(refund.amount),
            "reason": refund.reason,
            "refunded_by": 1,
            "refunded_payment": False,
            "meta_data": [
                {"id": refund.meta_id, "key": "_refund_type", "value": "full" if refund.full else "partial"},
                *({"id": i, "key": k, "value": v} for i, k, v in refund.meta),
            ],
            "line_items": [
                {
                    **self.v3_line(
                        rl.line,
                        sign=-1,
                        quantity=rl.quantity,
                        refunded=rl.line.id,
                        meta_id=rl.meta_id,
                        total=rl.total,
                        taxes=rl.taxes,
                    ),
                    "id": rl.id,
                }
                for rl in refund.lines
                if isinstance(rl.line, Line)
            ],
            "shipping_lines": [
                _shipping_line(rl.id, rl.line, -rl.total, _negated(rl.taxes), _refunded(rl))
                for rl in refund.lines
                if isinstance(rl.line, ShippingLine)
            ],
            "tax_lines": [
                _tax_line(
                    refund.tax_line_ids.get(rate, 0), rate, -cart.get(rate, ZERO), -ship.get(rate, ZERO)
                )
                for rate in sorted({*cart, *ship})
            ],
            "fee_lines": [
                _fee_line(rl.id, rl.line, -rl.total, _negated(rl.taxes), _refunded(rl))
                for rl in refund.lines
                if isinstance(rl.line, FeeLine)
            ],
            "_links": _child_links(api, order.id, "refunds", refund.id),
        }

    def v3_refund_listed(self, order: Order, refund: Refund, base: str) -> dict[str, Any]:
        """The store-wide ``GET /refunds`` adds ``parent_id``."""
        body = self.v3_refund(order, refund, base)
        return {"id": body.pop("id"), "parent_id": order.id, **body}

    def v3_note(self, order: Order, note: Note, base: str) -> dict[str, Any]:
        api = f"{base}/wp-json/wc/v3"
        return {
            "id": note.id,
            "author": note.author,
            "date_created": self.local(note.created),
            "date_created_gmt": self.gmt(note.created),
            "note": note.text,
            "customer_note": note.customer_note,
            "_links": _child_links(api, order.id, "notes", note.id),
        }

    # ---- legacy v2 ---------------------------------------------------------------------------
    def v2_order(self, order: Order, base: str, customer: dict[str, Any]) -> dict[str, Any]:
        billing = dict(order.billing)
        shipping = {k: v for k, v in order.shipping.items() if k != "phone"}
        return {
            "id": order.id,
            "order_number": str(order.id),
            "created_at": self.zulu(order.created),
            "updated_at": self.zulu(order.modified),
            "completed_at": self.zulu(order.completed),
            "status": order.status,
            "currency": order.currency,
            "total": money(order.total),
            "subtotal": money(order.subtotal),
            "total_line_items_quantity": sum(line.quantity for line in order.lines),
            "total_tax": money(order.total_tax),
            "total_shipping": money(order.shipping_total),
            "cart_tax": money(order.cart_tax),
            "shipping_tax": money(order.shipping_tax),
            "total_discount": money(order.discount_total),
            "shipping_methods": ", ".join(s.method_title for s in order.shipping_lines),
            "payment_details": {
                "method_id": order.payment_method,
                "method_title": order.payment_method_title,
                "paid": order.paid is not None,
            },
            "billing_address": billing,
            "shipping_address": shipping,
            "note": order.customer_note,
            "customer_ip": order.customer_ip,
            "customer_user_agent": order.user_agent,
            "customer_id": order.customer_id,
            "view_order_url": f"{base}/my-account/view-order/{order.id}/",
            "line_items": [self.v2_line(line) for line in order.lines],
            "shipping_lines": [
                {
                    "id": s.id,
                    "method_id": s.method_id,
                    "method_title": s.method_title,
                    "total": money(s.total),
                }
                for s in order.shipping_lines
            ],
            "tax_lines": [
                {
                    "id": order.tax_line_ids.get(rate, 0),
                    "rate_id": rate,
                    "code": RATES[rate].code,
                    "title": RATES[rate].label,
                    "total": money(cart + ship),
                    "compound": False,
                }
                for rate, cart, ship in order.tax_rows()
            ],
            "fee_lines": [
                {
                    "id": f.id,
                    "title": f.name,
                    "tax_class": "",
                    "total": money(f.total),
                    "total_tax": money(sum(f.taxes.values(), ZERO)),
                }
                for f in order.fees
            ],
            "coupon_lines": [
                {"id": c.id, "code": c.code, "amount": money(c.discount)} for c in order.coupons
            ],
            "customer": customer,
        }

    @staticmethod
    def v2_line(
        line: Line,
        *,
        sign: int = 1,
        quantity: int | None = None,
        total: Decimal | None = None,
        taxes: dict[int, Decimal] | None = None,
    ) -> dict[str, Any]:
        product = line.product
        qty = line.quantity if quantity is None else quantity
        line_total = line.total if total is None else total
        line_subtotal = line.subtotal if total is None else total
        line_tax = sum((line.taxes if taxes is None else taxes).values(), ZERO)
        sub_tax = line.subtotal_tax if taxes is None else line_tax
        return {
            "id": line.id,
            "subtotal": money(line_subtotal * sign),
            "subtotal_tax": money(sub_tax * sign),
            "total": money(line_total * sign),
            "total_tax": money(line_tax * sign),
            "price": money(cents(line_total / qty) if qty else ZERO),  # number_format rounds half up
            "quantity": qty * sign,
            "tax_class": product.tax_class,
            "name": product.name,
            "product_id": product.id,
            "sku": product.sku,
            "meta": [{"key": k, "value": v, "label": label} for k, label, v in product.attributes],
        }

    def v2_refund(self, refund: Refund) -> dict[str, Any]:
        return {
            "id": refund.id,
            "created_at": self.zulu(refund.created),
            "amount": money(refund.amount),
            "reason": refund.reason,
            "line_items": [
                {
                    **self.v2_line(rl.line, sign=-1, quantity=rl.quantity, total=rl.total, taxes=rl.taxes),
                    "id": rl.id,
                    "refunded_item_id": 0,
                }
                for rl in refund.lines
                if isinstance(rl.line, Line)  # the legacy API lists product lines only
            ],
        }

    def v2_note(self, note: Note) -> dict[str, Any]:
        return {
            "id": str(note.id),
            "created_at": self.zulu(note.created),
            "note": note.text,
            "customer_note": note.customer_note,
        }


def _negated(taxes: dict[int, Decimal]) -> dict[int, Decimal]:
    return {rate: -amount for rate, amount in taxes.items()}


def _refunded(rl: RefundLine) -> list[dict[str, Any]]:
    """A refund item's meta: the id of the order item it refunds."""
    return [{"id": rl.meta_id, "key": "_refunded_item_id", "value": str(rl.line.id)}]


def _shipping_line(
    item_id: int, s: ShippingLine, total: Decimal, taxes: dict[int, Decimal], meta: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "id": item_id,
        "method_title": s.method_title,
        "method_id": s.method_id,
        "instance_id": "",
        "total": money(total),
        "total_tax": money(sum(taxes.values(), ZERO)),
        "taxes": [{"id": r, "total": money(t), "subtotal": ""} for r, t in taxes.items()],
        "tax_status": "taxable",
        "meta_data": meta or [],
    }


def _fee_line(
    item_id: int, f: FeeLine, total: Decimal, taxes: dict[int, Decimal], meta: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "id": item_id,
        "name": f.name,
        "tax_class": "",
        "tax_status": "taxable",
        "amount": "",
        "total": money(total),
        "total_tax": money(sum(taxes.values(), ZERO)),
        "taxes": [{"id": r, "total": money(t), "subtotal": ""} for r, t in taxes.items()],
        "meta_data": meta or [],
    }


def _tax_line(line_id: int, rate: int, tax: Decimal, shipping_tax: Decimal) -> dict[str, Any]:
    return {
        "id": line_id,
        "rate_code": RATES[rate].code,
        "rate_id": rate,
        "label": RATES[rate].label,
        "compound": False,
        "tax_total": money(tax),
        "shipping_tax_total": money(shipping_tax),
        "rate_percent": number(RATES[rate].percent),
        "meta_data": [],
    }


def _child_links(api: str, order_id: int, kind: str, child_id: int) -> dict[str, Any]:
    """``_links`` of a refund or a note: itself, its collection and its order."""
    return {
        "self": [
            {
                "href": f"{api}/orders/{order_id}/{kind}/{child_id}",
                "targetHints": {"allow": ["GET", "DELETE"]},
            }
        ],
        "collection": [{"href": f"{api}/orders/{order_id}/{kind}"}],
        "up": [{"href": f"{api}/orders/{order_id}"}],
    }


def _display_key(product: Any, key: str) -> str:
    for k, label, _ in product.attributes:
        if k == key:
            return label
    return key


def coupon_type(code: str) -> str:
    from ordersync.sandbox.woocommerce.catalog import COUPONS

    return COUPONS[code].kind


def coupon_amount(code: str) -> Decimal:
    from ordersync.sandbox.woocommerce.catalog import COUPONS

    return COUPONS[code].amount


def coupon_info(code: str) -> str:
    """The ``coupon_info`` meta WooCommerce stores: a JSON string, ``[id,"code",type-or-null,amount]``."""
    from ordersync.sandbox.woocommerce.catalog import COUPONS

    ids = {"tenoff": 24, "five": 25, "mug2": 26}
    coupon = COUPONS[code]
    kind = None if coupon.kind == "fixed_cart" else coupon.kind
    return json.dumps([ids[code], code, kind, number(coupon.amount)], separators=(",", ":"))
