"""The WebCommander writer against the sandbox shop (external-app and v4 admin API on one ASGI app):
each operation's effect on the shop, what it refuses before sending, and the OAuth2 token's life."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest

from ordersync.config import HttpSettings, WebCommanderShop
from ordersync.errors import AuthError, NotFoundError, TokenRefusedError
from ordersync.http import HttpPolicy
from ordersync.models import Address, LineItem, Order, OrderStatus, Platform, ShippingLine
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
from ordersync.platforms.webcommander.writer import WebCommanderWriter
from ordersync.sandbox.faults import FaultInjector
from ordersync.sandbox.webcommander.admin_api import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID, create_app
from ordersync.sandbox.webcommander.store import WebCommanderStore

T = TypeVar("T")
ADMIN = "/api/v4/admin/orders"
TOKEN_PATH = "/api/v4/oauth2/token"
LIFETIME = 60


class Clock:
    def __init__(self, step: float = 0.0) -> None:
        self.now = 1_700_000_000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class Env:
    """One sandbox shop, its clock, and writers configured for it."""

    def __init__(self, server_clock: Clock | None = None, lifetime: float = LIFETIME) -> None:
        self.store = WebCommanderStore(orders=40, seed=11)
        self.server_clock = server_clock or Clock()
        self.app: FaultInjector = create_app(self.store, token_lifetime=lifetime, clock=self.server_clock)
        self.client_clock = Clock()

    def shop(self, *, admin: bool = True, secret: str = DEFAULT_CLIENT_SECRET) -> WebCommanderShop:
        admin_api = (
            {"base_url": "http://wcapi.test", "client_id": DEFAULT_CLIENT_ID, "client_secret": secret}
            if admin
            else None
        )
        return WebCommanderShop.model_validate(
            {
                "name": "wc",
                "platform": "webcommander",
                "base_url": "http://wc.test",
                "uuid": DEFAULT_UUID,
                "access_token": DEFAULT_TOKEN,
                "timezone": "Australia/Melbourne",
                "currency": "AUD",
                "admin_api": admin_api,
                "country_ids": {"AU": 12, "US": 236},
                "state_ids": {"AU-VIC": 72, "AU-NSW": 67},
            }
        )

    def run(self, body: Callable[[WebCommanderWriter], Awaitable[T]], **shop: Any) -> T:
        async def go() -> T:
            policy = HttpPolicy(HttpSettings(max_retries=2, backoff_base=0), shop="wc")
            transport = httpx.ASGITransport(app=self.app)
            async with WebCommanderWriter(self.shop(**shop), policy, transport=transport) as writer:
                if writer.auth is not None:
                    writer.auth.clock = self.client_clock
                return await body(writer)

        return asyncio.run(go())

    def apply(self, op: Any, key: str = "k", current: Order | None = None, **shop: Any) -> Applied:
        async def body(writer: WebCommanderWriter) -> Applied:
            target = current
            if target is None and not isinstance(op, CreateOrder):
                target = await writer.fetch(op.order_id)
            return await writer.apply(op, marker(key), target)

        return self.run(body, **shop)

    def fetch(self, order_id: str) -> Order:
        return self.run(lambda w: w.fetch(order_id))

    def requests(self, path: str) -> int:
        return self.app.total_requests(path)


@pytest.fixture
def env() -> Env:
    return Env()


def D(value: Any) -> Decimal:
    return Decimal(str(value))


def paid_order(env: Env) -> dict[str, Any]:
    """An order with one paid payment and no refunds yet."""
    for order in env.store.orders():
        entries = order["payments"]
        if len(entries) == 1 and entries[0]["status"] == "success" and D(entries[0]["amount"]) > 20:
            return order
    raise AssertionError("no paid order in the sample")


def unpaid_order(env: Env) -> dict[str, Any]:
    for order in env.store.orders():
        if order["paymentStatus"] == "unpaid" and D(order["orderSummary"]["grandTotal"]) > 20:
            return order
    raise AssertionError("no unpaid order in the sample")


# -- reads --------------------------------------------------------------------------------------------


def test_fetch_maps_the_order_and_passes_not_found_through(env: Env) -> None:
    order = env.fetch("3")
    raw = env.store.get(3)
    assert (order.platform, order.shop, order.external_id, order.currency) == (
        Platform.WEBCOMMANDER,
        "wc",
        "3",
        "AUD",
    )
    assert order.total == D(raw["orderSummary"]["grandTotal"])
    with pytest.raises(NotFoundError) as caught:
        env.fetch("99999")
    assert DEFAULT_TOKEN not in str(caught.value) and DEFAULT_UUID not in str(caught.value)


# -- status, payment status, comments -------------------------------------------------------------------


def test_set_status_and_payment_status_change_the_order_once_with_the_marker_as_key(env: Env) -> None:
    env.apply(SetStatus(order_id="3", value="processing", status=OrderStatus.PROCESSING), key="s")
    env.apply(SetPaymentStatus(order_id="3", value="completed"), key="p")
    raw = env.store.get(3)
    assert (raw["orderStatus"], raw["paymentStatus"]) == ("processing", "completed")
    keys = {key for _, key in env.store.replies}
    assert {marker("s"), marker("p")} <= keys


def test_an_internal_comment_goes_through_the_external_app_api(env: Env) -> None:
    applied = env.apply(AddComment(order_id="5", text="check the address"))
    comment = env.store.get(5)["orderComment"][-1]
    assert applied.ids == {"comment_id": str(comment["id"])}
    assert (comment["content"], comment["isVisibleToCustomer"]) == ("check the address", False)
    assert env.requests(ADMIN) == 0


def test_a_customer_visible_comment_goes_through_the_v4_api_flagged(env: Env) -> None:
    applied = env.apply(AddComment(order_id="5", text="Your order shipped", customer_visible=True))
    comment = env.store.get(5)["orderComment"][-1]
    assert applied.ids == {"comment_id": str(comment["id"])}
    assert (comment["content"], comment["isVisibleToCustomer"], comment["isAdmin"]) == (
        "Your order shipped",
        True,
        True,
    )
    mapped = next(c for c in env.fetch("5").comments if c.external_id == str(comment["id"]))
    assert mapped.customer_visible is True
    assert env.requests(f"{ADMIN}/5/comments") == 1


def test_a_customer_visible_comment_without_admin_api_is_refused_unsent(env: Env) -> None:
    before = env.store.get(5)["orderComment"]
    with pytest.raises(OperationRejected, match="admin_api"):
        env.apply(AddComment(order_id="5", text="hello", customer_visible=True), admin=False)
    assert env.store.get(5)["orderComment"] == before


# -- refunds --------------------------------------------------------------------------------------------


def test_a_refund_goes_against_the_paid_payment_and_reports_the_refund_entry(env: Env) -> None:
    order = paid_order(env)
    payment = order["payments"][0]
    applied = env.apply(CreateRefund(order_id=str(order["id"]), amount=Decimal("5.25"), currency="AUD"))
    entries = env.store.get(order["id"])["payments"]
    [refund] = [p for p in entries if p["refundId"] is not None]
    assert (refund["refundId"], D(refund["amount"])) == (payment["id"], Decimal("5.25"))
    assert applied.ids == {"refund_id": str(refund["id"])}
    assert env.fetch(str(order["id"])).refunded_total == Decimal("5.25")


def test_a_refund_picks_the_payment_that_has_enough_left(env: Env) -> None:
    order = unpaid_order(env)
    grand = D(order["orderSummary"]["grandTotal"])
    first = env.store.make_payment(order["id"], "PIS", "2024-03-01 10:00:00", "10.00")
    second = env.store.make_payment(order["id"], "CRD", "2024-03-01 10:00:00", str(grand - Decimal("10.00")))
    env.store.refund_payment(first, "8.00")
    env.apply(CreateRefund(order_id=str(order["id"]), amount=Decimal("5.00")))
    refunds = [p for p in env.store.get(order["id"])["payments"] if p["refundId"] is not None]
    assert [(p["refundId"], D(p["amount"])) for p in refunds] == [
        (first, Decimal("8.00")),
        (second, Decimal("5.00")),
    ]
    oid = str(order["id"])
    with pytest.raises(OperationRejected) as caught:
        env.apply(CreateRefund(order_id=oid, amount=Decimal("3.00"), payment_id=str(first)), key="2")
    assert f"payment {first} has only 2.00 left to refund (paid 10.00, refunded 8.00)" in caught.value.reason
    env.apply(CreateRefund(order_id=oid, amount=Decimal("2.00"), payment_id=str(first)), key="3")
    with pytest.raises(OperationRejected, match=f"payment {first} is refunded"):
        env.apply(CreateRefund(order_id=oid, amount=Decimal("0.01"), payment_id=str(first)), key="4")
    assert env.requests("order-payment-refund") == 2


def test_an_over_refund_is_refused_naming_the_amounts_and_nothing_is_sent(env: Env) -> None:
    order = paid_order(env)
    paid = D(order["payments"][0]["amount"])
    too_much = paid + Decimal("0.01")
    with pytest.raises(OperationRejected) as caught:
        env.apply(CreateRefund(order_id=str(order["id"]), amount=too_much))
    reason = caught.value.reason
    assert str(order["id"]) in reason and str(too_much) in reason
    assert f"payment {order['payments'][0]['id']}: {paid}" in reason
    with pytest.raises(OperationRejected, match="no payment 4242"):
        env.apply(CreateRefund(order_id=str(order["id"]), amount=Decimal(1), payment_id="4242"))
    assert env.requests("order-payment-refund") == 0
    assert env.store.get(order["id"])["payments"] == order["payments"]


def test_a_refund_in_another_currency_is_refused(env: Env) -> None:
    order = paid_order(env)
    with pytest.raises(OperationRejected, match="USD"):
        env.apply(CreateRefund(order_id=str(order["id"]), amount=Decimal(1), currency="USD"))
    assert env.requests("order-payment-refund") == 0


def test_an_unpaid_order_has_nothing_to_refund(env: Env) -> None:
    order = unpaid_order(env)
    with pytest.raises(OperationRejected, match="no paid payment"):
        env.apply(CreateRefund(order_id=str(order["id"]), amount=Decimal(1)))


# -- payments, cancel, invoices --------------------------------------------------------------------------


def test_record_payment_uses_the_shops_gateway_and_local_time(env: Env) -> None:
    order = unpaid_order(env)
    paid_at = datetime(2024, 3, 1, 0, 0, 5, tzinfo=UTC)  # 11:00:05 in Melbourne (AEDT)
    applied = env.apply(RecordPayment(order_id=str(order["id"]), amount=Decimal("12.30"), paid_at=paid_at))
    entry = env.store.get(order["id"])["payments"][-1]
    assert applied.ids == {"payment_id": str(entry["id"])}
    assert (D(entry["amount"]), entry["gatewayCode"], entry["payingDate"]) == (
        Decimal("12.30"),
        "PIS",
        "2024-03-01T11: 00: 05",
    )
    env.apply(
        RecordPayment(order_id=str(order["id"]), amount=Decimal(1), gateway="BNK", paid_at=paid_at), key="2"
    )
    assert env.store.get(order["id"])["payments"][-1]["gatewayCode"] == "BNK"
    with pytest.raises(OperationRejected, match="EUR"):
        env.apply(RecordPayment(order_id=str(order["id"]), amount=Decimal(1), currency="EUR"), key="3")
    with pytest.raises(OperationRejected, match="needs a date"):
        env.apply(RecordPayment(order_id=str(order["id"]), amount=Decimal(1)), key="4")
    due = env.fetch(str(order["id"]))
    owed = due.total - sum(p.amount for p in due.payments if p.status.value == "paid")
    with pytest.raises(OperationRejected, match="more than the"):
        env.apply(
            RecordPayment(order_id=str(order["id"]), amount=owed + Decimal("0.01"), paid_at=paid_at), key="5"
        )
    assert env.requests("make-order-payment") == 2  # neither refusal reached the shop


def test_cancel_uses_the_v4_api_when_configured_and_change_status_otherwise(env: Env) -> None:
    env.apply(CancelOrder(order_id="6"))
    assert env.store.get(6)["orderStatus"] == "cancelled"
    assert env.requests(f"{ADMIN}/6/cancel") == 1
    env.apply(CancelOrder(order_id="7"), admin=False)
    assert env.store.get(7)["orderStatus"] == "cancelled"
    assert env.requests(f"{ADMIN}/7/cancel") == 0 and env.requests("change-order-Status") == 1


def test_send_invoice_reaches_the_v4_api_or_is_refused_without_it(env: Env) -> None:
    env.apply(SendInvoice(order_id="4", notes="Pay within 14 days"))
    [invoice] = env.store.invoices
    assert (invoice["order_id"], invoice["notes"]) == (4, "Pay within 14 days")
    assert invoice["payment_status"] == env.store.get(4)["paymentStatus"]
    with pytest.raises(OperationRejected, match="admin_api"):
        env.apply(SendInvoice(order_id="4"), admin=False)
    assert len(env.store.invoices) == 1


# -- create order -----------------------------------------------------------------------------------------


def address(state: str = "VIC", country: str = "AU") -> Address:
    return Address(
        first_name="Mia",
        last_name="Chen",
        line1="1 High St",
        city="Docklands",
        postcode="3008",
        state_code=state,
        country_code=country,
        email="mia@example.com",
    )


def source_order(*, sku_b: str = "SKU-B", state: str = "VIC", currency: str = "AUD") -> Order:
    """A source shop's order: 666.00 gross for one unit, 10.00 gross for three, 10 + 1 shipping."""
    lines = [
        LineItem(
            external_id="11",
            sku="SKU-A",
            name="API Product",
            quantity=Decimal(1),
            subtotal=Decimal("605.45"),
            total=Decimal("605.45"),
            tax=Decimal("60.55"),
        ),
        LineItem(
            external_id="12",
            sku=sku_b,
            name="Socks",
            quantity=Decimal(3),
            subtotal=Decimal("9.09"),
            total=Decimal("9.09"),
            tax=Decimal("0.91"),
        ),
    ]
    return Order(
        platform=Platform.WOOCOMMERCE,
        shop="woo",
        external_id="501",
        status=OrderStatus.PROCESSING,
        currency=currency,
        created_at=datetime(2024, 5, 1, tzinfo=UTC),
        billing=address(state),
        shipping=address(state),
        subtotal=Decimal("614.54"),
        shipping_total=Decimal("10.00"),
        shipping_tax=Decimal("1.00"),
        tax_total=Decimal("62.46"),
        total=Decimal("687.00"),
        line_items=lines,
        shipping_lines=[ShippingLine(method_title="Flat rate", total=Decimal("10.00"), tax=Decimal("1.00"))],
    )


PRODUCTS = {"SKU-A": "495", "SKU-B": "21"}


def create(order: Order, products: dict[str, str] | None = None) -> CreateOrder:
    return CreateOrder(source_shop="woo", source_order_id="501", order=order, products=products or PRODUCTS)


def test_create_order_maps_skus_addresses_and_keeps_the_customers_total(env: Env) -> None:
    before = env.store.count
    applied = env.apply(create(source_order()), key="create-501")
    assert env.store.count == before + 1
    created = env.store.single(applied.ids["order_id"])
    assert [(i["productId"], i["quantity"], D(i["actualPrice"])) for i in created["items"]] == [
        (495, 1, Decimal("666.00")),
        (21, 2, Decimal("3.33")),  # 10.00 for three units: 3.33 + 3.33 + 3.34
        (21, 1, Decimal("3.34")),
    ]
    assert (D(created["items"][0]["price"]), D(created["items"][0]["tax"])) == (
        Decimal("605.45"),
        Decimal("60.55"),
    )
    assert D(created["orderSummary"]["grandTotal"]) == Decimal("687.00")
    assert (D(created["shippingCost"]), D(created["shippingTax"])) == (Decimal("10.00"), Decimal("1.00"))
    for kind in ("billing", "shipping"):
        assert (created[kind]["country"]["id"], created[kind]["state"]["id"]) == (12, 72)
        assert created[kind]["email"] == "mia@example.com"
    # The shop's answer is kept as the replica's state at creation, not written to the outbox.
    answered = applied.created
    assert answered is not None and answered.external_id == applied.ids["order_id"]
    assert (answered.status.value, answered.total) == (created["orderStatus"], Decimal("687.00"))
    assert "created" not in applied.model_dump()


def test_a_resent_create_with_the_same_marker_makes_one_order(env: Env) -> None:
    first = env.apply(create(source_order()), key="create-501")
    again = env.apply(create(source_order()), key="create-501")
    assert first.ids == again.ids
    assert sum(1 for o in env.store.orders() if o["items"][0]["productId"] == 495 and o["id"] > 40) == 1


def test_an_unmapped_sku_refuses_the_whole_order_and_nothing_is_created(env: Env) -> None:
    before = env.store.count
    with pytest.raises(OperationRejected) as caught:
        env.apply(create(source_order(sku_b="SKU-UNKNOWN")))
    reason = caught.value.reason
    assert "'SKU-UNKNOWN'" in reason and "line 2" in reason and "Socks" in reason and "501" in reason
    assert env.store.count == before and env.requests("order-create") == 0


@pytest.mark.parametrize(
    "order, words",
    [
        (source_order(state="QLD"), ["'AU-QLD'", "state_ids"]),
        (source_order().model_copy(update={"billing": address(country="NZ")}), ["'NZ'", "country_ids"]),
        (source_order(currency="USD"), ["USD", "AUD"]),
        (source_order().model_copy(update={"total": Decimal("680.00")}), ["687.00", "680.00"]),
    ],
    ids=["state", "country", "currency", "total"],
)
def test_create_order_refusals_name_what_to_fix(env: Env, order: Order, words: list[str]) -> None:
    with pytest.raises(OperationRejected) as caught:
        env.apply(create(order))
    for word in words:
        assert word in caught.value.reason
    assert env.requests("order-create") == 0


# -- the OAuth2 token ------------------------------------------------------------------------------------


def visible(order_id: str, n: int) -> AddComment:
    return AddComment(order_id=order_id, text=f"note {n}", customer_visible=True)


def test_the_token_is_cached_and_refreshed_shortly_before_it_expires(env: Env) -> None:
    async def body(writer: WebCommanderWriter) -> None:
        assert writer.auth is not None
        await writer.apply(visible("2", 1), marker("1"), None)
        await writer.apply(visible("2", 2), marker("2"), None)
        assert writer.auth.tokens_fetched == 1
        margin = min(30, LIFETIME / 10)
        for clock in (env.client_clock, env.server_clock):
            clock.now += LIFETIME - margin + 1  # within the margin: not yet expired on the server
        await writer.apply(visible("2", 3), marker("3"), None)
        assert writer.auth.tokens_fetched == 2
        assert env.app.state.tokens.refreshed == 1  # renewed by the refresh token, not a new grant

    env.run(body)
    assert env.requests(TOKEN_PATH) == 2
    assert env.requests(f"{ADMIN}/2/comments") == 3  # no request was refused and sent again


def test_a_five_second_token_is_still_used_and_renewed_by_its_refresh_token() -> None:
    env = Env(lifetime=5)

    async def body(writer: WebCommanderWriter) -> None:
        assert writer.auth is not None
        await writer.apply(visible("2", 1), marker("1"), None)
        for clock in (env.client_clock, env.server_clock):
            clock.now += 3  # 2 s left: more than a tenth of its lifetime, so it is sent as it is
        await writer.apply(visible("2", 2), marker("2"), None)
        assert writer.auth.tokens_fetched == 1
        for clock in (env.client_clock, env.server_clock):
            clock.now += 1.8  # inside the margin now
        await writer.apply(visible("2", 3), marker("3"), None)
        await writer.apply(visible("2", 4), marker("4"), None)
        assert writer.auth.tokens_fetched == 2

    env.run(body)
    assert env.app.state.tokens.issued == 2 and env.app.state.tokens.refreshed == 1
    assert env.requests(f"{ADMIN}/2/comments") == 4


def test_a_used_refresh_token_falls_back_to_a_new_client_grant(env: Env) -> None:
    async def body(writer: WebCommanderWriter) -> None:
        assert writer.auth is not None
        await writer.apply(visible("2", 1), marker("1"), None)
        env.app.state.tokens._refresh.clear()  # the server forgot it (or another process spent it)
        for clock in (env.client_clock, env.server_clock):
            clock.now += LIFETIME
        await writer.apply(visible("2", 2), marker("2"), None)
        assert writer.auth.tokens_fetched == 2

    env.run(body)
    assert env.requests(TOKEN_PATH) == 3  # grant, refused refresh, new grant
    assert env.app.state.tokens.refreshed == 0


def test_a_401_gets_one_new_token_and_one_more_try(env: Env) -> None:
    async def body(writer: WebCommanderWriter) -> None:
        assert writer.auth is not None
        await writer.apply(visible("2", 1), marker("1"), None)
        env.server_clock.now += 3600  # the server expired the token; by our clock it is still fresh
        await writer.apply(visible("2", 2), marker("2"), None)
        assert writer.auth.tokens_fetched == 2

    env.run(body)
    assert env.requests(f"{ADMIN}/2/comments") == 3
    texts = [c["content"] for c in env.store.get(2)["orderComment"]]
    assert texts.count("note 1") == texts.count("note 2") == 1


def test_a_second_401_is_an_auth_error_not_a_third_try() -> None:
    env = Env(server_clock=Clock(step=10_000))  # every token is expired by the time it is checked

    async def body(writer: WebCommanderWriter) -> None:
        await writer.apply(visible("2", 1), marker("1"), None)

    with pytest.raises(AuthError) as caught:
        env.run(body)
    assert caught.value.status == 401 and caught.value.shop == "wc"
    assert env.requests(TOKEN_PATH) == 2 and env.requests(f"{ADMIN}/2/comments") == 2
    assert all(c["content"] != "note 1" for c in env.store.get(2)["orderComment"])


def test_a_refused_token_request_names_the_shop_and_url_but_no_secret(env: Env) -> None:
    wrong = "wrong-secret-Zq81"
    with pytest.raises(TokenRefusedError) as caught:
        env.apply(SendInvoice(order_id="4"), secret=wrong)
    text = str(caught.value)
    assert "'wc'" in text and "http://wcapi.test/api/v4/oauth2/token" in text and "invalid_client" in text
    for secret in (wrong, DEFAULT_CLIENT_ID, DEFAULT_TOKEN, DEFAULT_UUID):
        assert secret not in text
    assert env.requests(f"{ADMIN}/4/send-invoice") == 0 and env.store.invoices == []


def test_an_order_an_interrupted_create_made_is_found_by_its_content(env: Env) -> None:
    """WebCommander keeps no marker: the order is recognised by email, products, quantities, total."""
    since = datetime.now(UTC) - timedelta(seconds=2)
    op = create(source_order())
    assert env.run(lambda w: w.find_created(op, marker("k"), since)) == []
    applied = env.apply(op, key="create-501")
    assert env.run(lambda w: w.find_created(op, marker("k"), since)) == [applied.ids["order_id"]]
    other = create(source_order(sku_b="SKU-A"), products={"SKU-A": "495"})
    assert env.run(lambda w: w.find_created(other, marker("k"), since)) == []  # other lines
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert env.run(lambda w: w.find_created(op, marker("k"), later)) == []  # made before `since`
    again = env.apply(op, key="create-502")  # the same customer buying the same again
    both = env.run(lambda w: w.find_created(op, marker("k"), since))
    assert sorted(both) == sorted([applied.ids["order_id"], again.ids["order_id"]])  # the outbox won't guess
