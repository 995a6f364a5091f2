"""What routing needs to know of an order: its statuses and the ids of its comments, refunds and
payments, read from the state store's order versions (orders changed since the last routing) or from
a canonical order (what a writer fetched)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ordersync.models import Order, PaymentStatus
from ordersync.state.versions import Version

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


def from_version(version: Version, notes: NoteFilter = DEFAULT_NOTES) -> Observed:
    """An order as its recorded version (the state store's feed) shows it."""
    facts = version.facts
    return Observed(
        order_id=version.order_id,
        number=facts.get("number"),
        status=version.status or "",
        payment_status=facts.get("payment_status"),
        currency=facts.get("currency") or "",
        created_at=version.created_at,
        updated_at=version.updated_at,
        comments=[
            (item_id(found, text=text), text, bool(visible))
            for found, text, visible, author in facts.get("comments", [])
            if notes.routed(version.platform, author, text)
        ],
        refunds=[
            (item_id(found, amount=Decimal(amount)), Decimal(amount), reason)
            for found, amount, reason in facts.get("refunds", [])
        ],
        payments=[
            (item_id(found, amount=Decimal(amount)), Decimal(amount), gateway)
            for found, amount, gateway in facts.get("payments", [])
        ],
    )
