"""The WooCommerce writer against the sandbox shop (REST v3 and the legacy API v2): each operation's
effect in the shop's store, and what it refuses without sending anything."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from ordersync.config import HttpSettings, WooCommerceShop
from ordersync.errors import HttpError
from ordersync.http import HttpPolicy
from ordersync.models import Order
from ordersync.operations import (
    AddComment,
    Applied,
    CancelOrder,
    CreateOrder,
    CreateRefund,
    OperationRejected,
    RecordPayment,
    SendInvoice,
    SetPaymentStatus,
    SetStatus,
    marker,
)
from ordersync.platforms.woocommerce.writer import WooCommerceWriter
from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET, create_app
from ordersync.sandbox.woocommerce.store import WooCommerceStore

VERSIONS = ["v3", "v2"]
T = TypeVar("T")
BILLING = {
    "first_name": "Clara",
    "last_name": "Neumann",
    "country": "DE",
    "email": "clara@example.test",
    "city": "Leipzig",
    "postcode": "04109",
}


class Recorder(httpx.AsyncBaseTransport):
    """The sandbox app, with every request it received kept for the test to look at."""

    def __init__(self, app: Any):
        self.inner = httpx.ASGITransport(app=app)
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    def sent(self, method: str, suffix: str = "") -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path.endswith(suffix)]

    def writes(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method != "GET"]


class Shop:
    def __init__(self, version: str, *, orders: int = 0):
        self.store = WooCommerceStore(orders=orders, seed=3)
        self.transport = Recorder(create_app(self.store))
        self.config = WooCommerceShop(
            name=f"woo-{version}",
            platform="woocommerce",
            base_url="https://shop.test",
            api_version=version,  # type: ignore[arg-type]
            consumer_key=DEFAULT_CONSUMER_KEY,
            consumer_secret=DEFAULT_CONSUMER_SECRET,
            timezone="Europe/Berlin",
            currency="EUR",
        )

    def run(self, work: Callable[[WooCommerceWriter], Awaitable[T]]) -> T:
        async def go() -> T:
            policy = HttpPolicy(HttpSettings(max_retries=0), shop=self.config.name)
            async with WooCommerceWriter(self.config, policy, transport=self.transport) as writer:
                return await work(writer)

        return asyncio.run(go())

    def order(self, **body: Any) -> int:
        made = self.store.create_order(
            {
                "payment_method": "bacs",
                "billing": BILLING,
                "line_items": [{"product_id": 12, "quantity": 2}, {"product_id": 20, "variation_id": 22}],
                "shipping_lines": [{"method_id": "flat_rate", "method_title": "Flat rate", "total": "4.90"}],
                **body,
            }
        )
        return made.id

    def fetch(self, order_id: int) -> Order:
        return self.run(lambda w: w.fetch(str(order_id)))

    def apply(self, op: Any, key: str = "k1", current: Order | None = None) -> Applied:
        async def work(writer: WooCommerceWriter) -> Applied:
            now = current if current is not None or isinstance(op, CreateOrder) else None
            if now is None and not isinstance(op, CreateOrder):
                now = await writer.fetch(op.order_id)
            return await writer.apply(op, marker(key), now)

        return self.run(work)


def body_of(request: httpx.Request) -> Any:
    return orjson.loads(request.content)


@pytest.mark.parametrize("version", VERSIONS)
def test_fetch_maps_the_order_with_refunds_and_notes(version: str) -> None:
    shop = Shop(version)
    oid = shop.order(set_paid=True)
    shop.store.add_note(oid, "Packed")
    shop.store.create_refund(oid, {"amount": "3.00", "reason": "Scratched", "api_refund": False})
    order = shop.fetch(oid)
    assert order.external_id == str(oid) and order.refunded_total == Decimal("3.00")
    assert "Packed" in [c.text for c in order.comments]
    assert [r.reason for r in order.refunds] == ["Scratched"]


@pytest.mark.parametrize("version", VERSIONS)
def test_set_status_and_cancel(version: str) -> None:
    shop = Shop(version)
    oid = shop.order(set_paid=True)
    assert shop.apply(SetStatus(order_id=str(oid), value="completed")) == Applied()
    assert shop.store.orders[oid].status == "completed"
    shop.apply(CancelOrder(order_id=str(oid)))
    assert shop.store.orders[oid].status == "cancelled"
    assert all(r.method == "PUT" for r in shop.transport.writes())


def test_v2_refuses_an_unknown_status_without_sending_it() -> None:
    shop = Shop("v2")
    oid = shop.order(set_paid=True)
    with pytest.raises(OperationRejected, match="no order status 'dispatched'"):
        shop.apply(SetStatus(order_id=str(oid), value="dispatched"))
    assert shop.transport.writes() == [] and shop.store.orders[oid].status == "processing"
    assert len(shop.transport.sent("GET", "/orders/statuses")) == 1
    shop.apply(SetStatus(order_id=str(oid), value="shipped"))  # a plugin's status, listed by the shop
    assert shop.store.orders[oid].status == "shipped"


def test_v3_batch_reports_each_update() -> None:
    shop = Shop("v3")
    ids = [shop.order() for _ in range(3)]
    ops = [
        SetStatus(order_id=str(ids[0]), value="on-hold"),
        SetStatus(order_id=str(ids[1]), value="dispatched"),
        SetStatus(order_id=str(ids[2]), value="completed"),
        SetStatus(order_id="999999", value="completed"),
    ]
    results = shop.run(lambda w: w.set_statuses(ops))
    assert isinstance(results[0], Applied) and isinstance(results[2], Applied)
    assert isinstance(results[1], HttpError) and results[1].code == "rest_invalid_param"
    assert isinstance(results[3], HttpError) and results[3].code == "woocommerce_rest_shop_order_invalid_id"
    assert [shop.store.orders[i].status for i in ids] == ["on-hold", "pending", "completed"]
    assert [r.url.path for r in shop.transport.writes()] == ["/wp-json/wc/v3/orders/batch"]


def test_v3_batch_splits_at_100() -> None:
    shop = Shop("v3")
    ids = [shop.order() for _ in range(101)]
    results = shop.run(lambda w: w.set_statuses([SetStatus(order_id=str(i), value="on-hold") for i in ids]))
    assert all(isinstance(r, Applied) for r in results) and len(results) == 101
    assert [len(body_of(r)["update"]) for r in shop.transport.writes()] == [100, 1]


def test_v2_batch_falls_back_to_one_put_each() -> None:
    shop = Shop("v2")
    ids = [shop.order(), shop.order()]
    ops = [SetStatus(order_id=str(ids[0]), value="on-hold"), SetStatus(order_id=str(ids[1]), value="nope")]
    results = shop.run(lambda w: w.set_statuses(ops))
    assert isinstance(results[0], Applied) and isinstance(results[1], OperationRejected)
    assert [r.method for r in shop.transport.writes()] == ["PUT"]


@pytest.mark.parametrize("version", VERSIONS)
def test_add_comment(version: str) -> None:
    shop = Shop(version)
    oid = shop.order()
    applied = shop.apply(AddComment(order_id=str(oid), text="Shipped by DHL", customer_visible=True))
    note = shop.store.orders[oid].notes[-1]
    assert applied.ids == {"comment_id": str(note.id)}
    assert (note.text, note.customer_note) == ("Shipped by DHL", True)


@pytest.mark.parametrize("version", VERSIONS)
def test_refund_carries_the_marker_out_of_the_customers_sight_and_is_recorded_only(version: str) -> None:
    shop = Shop(version)
    oid = shop.order(set_paid=True)
    applied = shop.apply(  # a source with four decimals, as WooCommerce's own _refund_amount shows
        CreateRefund(order_id=str(oid), amount=Decimal("5.0000"), currency="EUR", reason="Damaged"), "r1"
    )
    (refund,) = shop.store.orders[oid].refunds
    assert applied.ids == {"refund_id": str(refund.id)}
    assert refund.amount == Decimal("5.00")
    (sent,) = shop.transport.sent("POST", "/refunds")
    body = body_of(sent)["order_refund"] if version == "v2" else body_of(sent)
    assert body["api_refund"] is False and body["amount"] == "5.00"
    if version == "v3":  # in the refund's meta; the reason the customer reads is the reason
        assert refund.reason == "Damaged"
        assert ("_ordersync_marker", marker("r1")) in [(k, v) for _, k, v in refund.meta]
        (mapped,) = shop.fetch(oid).refunds
        assert mapped.marker == marker("r1") and mapped.reason == "Damaged"
    else:  # the legacy refunds API takes no meta: the marker ends the reason
        assert refund.reason == f"Damaged [{marker('r1')}]"


def test_v3_refund_by_line_with_its_tax() -> None:
    shop = Shop("v3")
    oid = shop.order(set_paid=True)
    current = shop.fetch(oid)
    line = current.line_items[0]
    unit, tax = line.total / 2, (line.tax / 2).quantize(Decimal("0.01"))
    op = CreateRefund(
        order_id=str(oid),
        amount=unit + tax,
        lines=[{"line_item_id": line.external_id, "quantity": 1, "amount": unit, "tax": tax}],  # type: ignore[list-item]
    )
    shop.apply(op, "r2", current)
    (refund,) = shop.store.orders[oid].refunds
    (rline,) = refund.lines
    assert rline.line.id == int(line.external_id) and rline.total == unit and sum(rline.taxes.values()) == tax
    assert refund.reason == "Refund from ordersync"


@pytest.mark.parametrize("version", VERSIONS)
def test_refunds_that_must_not_be_sent(version: str) -> None:
    shop = Shop(version)
    oid = shop.order(set_paid=True)
    shop.store.create_refund(oid, {"amount": "10.00", "api_refund": False})
    current = shop.fetch(oid)
    left = current.total - Decimal("10.00")
    with pytest.raises(OperationRejected) as too_much:
        shop.apply(CreateRefund(order_id=str(oid), amount=left + Decimal("0.01")), "r3", current)
    assert f"{left}" in too_much.value.reason and str(oid) in too_much.value.reason
    assert shop.config.name in too_much.value.reason
    with pytest.raises(OperationRejected, match="USD"):
        shop.apply(CreateRefund(order_id=str(oid), amount=Decimal(1), currency="USD"), "r4", current)
    assert shop.transport.writes() == [] and len(shop.store.orders[oid].refunds) == 1


def test_gateway_refunds_reach_the_gateway_and_fail_there() -> None:
    shop = Shop("v3")
    shop.config = shop.config.model_copy(update={"gateway_refunds": True})
    oid = shop.order(set_paid=True)
    with pytest.raises(HttpError) as failed:
        shop.apply(CreateRefund(order_id=str(oid), amount=Decimal(1)))
    assert failed.value.status == 500 and len(shop.transport.sent("POST", "/refunds")) == 1  # sent once


@pytest.mark.parametrize("version", VERSIONS)
def test_payments(version: str) -> None:
    shop = Shop(version)
    oid = shop.order()
    current = shop.fetch(oid)
    with pytest.raises(OperationRejected, match="not its total"):
        shop.apply(RecordPayment(order_id=str(oid), amount=current.total - 1), "p1", current)
    with pytest.raises(OperationRejected, match="only 'paid'"):
        shop.apply(SetPaymentStatus(order_id=str(oid), value="unpaid"), "p2", current)
    assert shop.transport.writes() == []
    op = RecordPayment(order_id=str(oid), amount=current.total, gateway="bacs", transaction_id="TX-1")
    shop.apply(op, "p3", current)
    order = shop.store.orders[oid]
    assert order.paid is not None and order.transaction_id == "TX-1" and order.status == "processing"
    writes = len(shop.transport.writes())
    # The same payment again (a replica's own payment step): already true, so done without a write.
    assert shop.apply(op, "p4").found is True
    assert len(shop.transport.writes()) == writes
    with pytest.raises(OperationRejected, match="already paid"):  # another amount on a paid order
        shop.apply(RecordPayment(order_id=str(oid), amount=Decimal("1.00")), "p5")


@pytest.mark.parametrize("version", VERSIONS)
def test_set_paid(version: str) -> None:
    shop = Shop(version)
    oid = shop.order()
    shop.apply(SetPaymentStatus(order_id=str(oid), value="paid"))
    assert shop.store.orders[oid].paid is not None


def test_send_invoice() -> None:
    shop = Shop("v3")
    oid = shop.order()
    shop.apply(SendInvoice(order_id=str(oid)))
    assert [(e["order_id"], e["to"]) for e in shop.store.sent_emails] == [(oid, "clara@example.test")]
    legacy = Shop("v2")
    other = legacy.order()
    with pytest.raises(OperationRejected, match="legacy API"):
        legacy.apply(SendInvoice(order_id=str(other)))
    assert legacy.transport.writes() == []


def _source_order() -> Order:
    source = Shop("v3")
    oid = source.order(customer_note="Ring twice", fee_lines=[{"name": "Gift wrap", "total": "2.50"}])
    return source.fetch(oid)


@pytest.mark.parametrize("version", VERSIONS)
def test_create_order_resolves_skus_and_can_be_found_by_marker(version: str) -> None:
    order = _source_order()
    target = Shop(version)
    since = datetime.now(UTC)
    op = CreateOrder(source_shop="web", source_order_id=order.external_id, order=order)
    applied = target.apply(op, "c1")
    made = target.store.orders[int(applied.ids["order_id"])]
    assert [(line.product.sku, line.quantity) for line in made.lines] == [("SKU-002", 2), ("TSHIRT-M", 1)]
    assert made.status == "pending" and made.paid is None and made.customer_note == "Ring twice"
    assert made.billing["email"] == "clara@example.test" and made.billing["country"] == "DE"
    assert [f.name for f in made.fees] == ["Gift wrap"] and made.shipping_total == Decimal("4.90")
    assert made.total == order.total
    # The shop's answer is kept as the replica's state at creation, not written to the outbox.
    answered = applied.created
    assert answered is not None and answered.external_id == applied.ids["order_id"]
    assert (answered.status.value, answered.total) == (made.status, order.total)
    assert "created" not in applied.model_dump()
    meta = {k: v for _, k, v in made.meta}
    key = "_ordersync_marker" if version == "v3" else "ordersync_marker"
    assert meta[key] == marker("c1") and f"web:{order.external_id}" in meta.values()
    (sent,) = target.transport.sent("POST", "/orders")
    line = (body_of(sent)["order"] if version == "v2" else body_of(sent))["line_items"][1]
    assert (line["product_id"], line.get("variation_id")) == ((20, 22) if version == "v3" else (22, None))
    found = target.run(lambda w: w.find_created(op, marker("c1"), since))
    assert found == [applied.ids["order_id"]]
    assert target.run(lambda w: w.find_created(op, marker("other"), since - timedelta(days=1))) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_create_order_with_an_unknown_sku_creates_nothing(version: str) -> None:
    order = _source_order()
    lines = [order.line_items[0], order.line_items[1].model_copy(update={"sku": "NOPE-1"})]
    broken = order.model_copy(update={"line_items": lines})
    target = Shop(version)
    with pytest.raises(OperationRejected, match="NOPE-1"):
        target.apply(CreateOrder(source_shop="web", source_order_id="1", order=broken), "c2")
    no_sku = order.model_copy(update={"line_items": [order.line_items[0].model_copy(update={"sku": None})]})
    with pytest.raises(OperationRejected, match="no SKU"):
        target.apply(CreateOrder(source_shop="web", source_order_id="1", order=no_sku), "c3")
    assert target.transport.writes() == [] and target.store.orders == {}


def test_create_order_takes_the_route_products_first() -> None:
    order = _source_order()
    target = Shop("v3")
    op = CreateOrder(
        source_shop="web", source_order_id="1", order=order, products={"SKU-002": "13", "TSHIRT-M": "19"}
    )
    made = target.store.orders[int(target.apply(op, "c4").ids["order_id"])]
    assert [line.product.sku for line in made.lines] == ["SKU-003", "SKU-EBOOK"]
    assert target.transport.sent("GET", "/products") == []


@pytest.mark.parametrize("version", ["v3", "v2"])
def test_create_order_refuses_a_mapped_product_the_shop_does_not_have(version: str) -> None:
    target = Shop(version)
    op = CreateOrder(
        source_shop="web", source_order_id="1", order=_source_order(), products={"SKU-002": "9999"}
    )
    with pytest.raises(OperationRejected, match="9999"):
        target.apply(op, "c5")
    assert target.transport.writes() == [] and target.store.orders == {}
