"""What routing needs to know of an order: its statuses and the ids of its comments, refunds and
payments, read from the mirror (orders changed since the last routing) or from a canonical order
(what a writer fetched)."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ordersync.models import Order, PaymentStatus

SYSTEM_AUTHORS = frozenset({"WooCommerce", "system"})
"""WooCommerce attributes its own notes (status changes, emails, stock) and every note added through
the API (``added_by_user`` false, as other integrations post them) to "WooCommerce"; a note a person
writes in the admin carries their name. So the author alone cannot tell bookkeeping from a message."""

WOOCOMMERCE_OWN_NOTES = re.compile(
    "|".join(
        (
            r"Order status changed from .+ to .+\.",  # anywhere: a gateway's or a bulk edit's text may lead
            r"Order status set to .+\.",
            r"^Email \".+\" sent\.",
            r"email notification manually sent\.",
            r"^Order details (manually )?sent to ",
            r"^Stock levels (reduced|increased)",
            r"^Item #\S+ (variation #\S+ )?stock (increased|reduced|decreased)",
            r"^Unable to (reduce|restore) stock for item ",
            r"^Adjusted stock: ",
            r"^(Added|Deleted|Removed) line items?: ",
            r"^Coupon (applied|removed)",
            r"^Order fully refunded\.",
            r"^Unpaid order cancelled",
            r"^Order cancelled by customer",
            r"^Awaiting (BACS|check|cheque) payment",
            r"^Payment to be made upon delivery",
        )
    ),
    re.IGNORECASE,
)
"""The notes WooCommerce core itself writes, in English, whoever it names as author (a status changed
by hand or by bulk edit is written under the admin's name). They are each shop's own bookkeeping and
are never routed; any other note is someone's message and is, whoever posted it."""


@dataclass(frozen=True)
class NoteFilter:
    """Which of a shop's comments are messages to route. On WooCommerce: not the texts WooCommerce
    writes (``WOOCOMMERCE_OWN_NOTES``, plus the shop's ``own_notes`` patterns, e.g. its language's
    texts); and, with ``api_notes`` off, only notes a person wrote in the admin."""

    own: re.Pattern[str] | None = None
    api_notes: bool = True

    def routed(self, platform: str, author: str | None, text: str) -> bool:
        if platform != "woocommerce":
            return True
        body = text.strip()
        if WOOCOMMERCE_OWN_NOTES.search(body) or (self.own is not None and self.own.search(body)):
            return False
        return self.api_notes or (author or "WooCommerce") not in SYSTEM_AUTHORS


DEFAULT_NOTES = NoteFilter()


def note_filter(shop: Any) -> NoteFilter:
    """The filter a shop's config asks for (a WooCommerce shop's ``own_notes`` and ``route_api_notes``)."""
    patterns = getattr(shop, "own_notes", None) or []
    own = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE) if patterns else None
    return NoteFilter(own=own, api_notes=getattr(shop, "route_api_notes", True))


def text_sig(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()[:16]


def amount_sig(amount: Decimal | str) -> str:
    return format(Decimal(str(amount)).quantize(Decimal("0.01")), "f")


def item_id(external_id: str | None, *, text: str | None = None, amount: Decimal | None = None) -> str:
    """An item's id, or for one the platform gives none (a WooCommerce payment) a stand-in that is
    the same however the value was read (mirror DECIMAL(18,4) or the API's string)."""
    if external_id:
        return external_id
    if text is not None:
        return f"text:{text_sig(text)}"
    return f"amount:{amount_sig(amount if amount is not None else Decimal(0))}"


@dataclass(frozen=True)
class Observed:
    order_id: str
    status: str
    payment_status: str | None
    currency: str
    created_at: datetime
    updated_at: datetime | None
    number: str | None = None
    loaded_at: datetime | None = None
    comments: list[tuple[str, str, bool]] = field(default_factory=list)
    """(id, text, customer visible)"""
    refunds: list[tuple[str, Decimal, str | None]] = field(default_factory=list)
    """(id, amount, reason)"""
    payments: list[tuple[str, Decimal, str | None]] = field(default_factory=list)
    """(id, amount, gateway) of payments that went through"""


def from_order(order: Order, notes: NoteFilter = DEFAULT_NOTES) -> Observed:
    return Observed(
        order_id=order.external_id,
        number=order.number,
        status=order.status.value,
        payment_status=order.payment_status.value if order.payment_status else None,
        currency=order.currency,
        created_at=order.created_at,
        updated_at=order.updated_at,
        comments=[
            (item_id(c.external_id, text=c.text), c.text, c.customer_visible)
            for c in order.comments
            if notes.routed(order.platform.value, c.author, c.text)
        ],
        refunds=[(item_id(r.external_id, amount=r.amount), r.amount, r.reason) for r in order.refunds],
        payments=[
            (item_id(p.external_id, amount=p.amount), p.amount, p.gateway)
            for p in order.payments
            if p.status == PaymentStatus.PAID
        ],
    )


_ORDERS = """
    SELECT order_id, number, status, payment_status, currency, created_at, updated_at, loaded_at
    FROM orders
    WHERE platform = $platform AND shop = $shop
      AND (loaded_at > $after OR (loaded_at = $after AND order_id > $after_id))
      AND (created_at >= $since OR list_contains($ids, order_id))
    ORDER BY loaded_at, order_id
"""


def changed_orders(
    con: Any,
    platform: str,
    shop: str,
    *,
    after: tuple[datetime, str],
    created_since: datetime,
    linked: list[str],
    notes: NoteFilter = DEFAULT_NOTES,
) -> list[Observed]:
    """Orders the mirror rewrote after ``after`` (a ``(loaded_at, order_id)`` position: one batch
    shares a ``loaded_at``) that routing cares about: linked ones, and ones
    created since ``created_since`` (replication candidates)."""
    params = {
        "platform": platform,
        "shop": shop,
        "after": after[0],
        "after_id": after[1],
        "since": created_since,
        "ids": linked,
    }
    heads = con.execute(_ORDERS, params).fetchall()
    if not heads:
        return []
    ids = [row[0] for row in heads]
    scope = {"platform": platform, "shop": shop, "ids": ids}
    children: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    queries = {
        "comments": "SELECT order_id, comment_id, text, customer_visible, author FROM comments",
        "refunds": "SELECT order_id, refund_id, amount, reason FROM refunds",
        "payments": "SELECT order_id, payment_id, amount, gateway FROM payments WHERE status = 'paid' AND",
    }
    for kind, select in queries.items():
        joiner = " " if select.endswith("AND") else " WHERE "
        sql = (
            f"{select}{joiner}platform = $platform AND shop = $shop AND list_contains($ids, order_id)"
            " ORDER BY order_id, position"
        )
        for order_id, found, a, b, *rest in con.execute(sql, scope).fetchall():
            if kind == "comments":
                if notes.routed(platform, rest[0], a):
                    children[order_id][kind].append((item_id(found, text=a), a, bool(b)))
            else:
                children[order_id][kind].append((item_id(found, amount=Decimal(a)), Decimal(a), b))
    return [
        Observed(
            order_id=row[0],
            number=row[1],
            status=row[2],
            payment_status=row[3],
            currency=row[4],
            created_at=row[5],
            updated_at=row[6],
            loaded_at=row[7],
            comments=children[row[0]]["comments"],
            refunds=children[row[0]]["refunds"],
            payments=children[row[0]]["payments"],
        )
        for row in heads
    ]
