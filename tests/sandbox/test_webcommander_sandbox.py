"""The WebCommander sandbox shop against its API document: envelopes, paging, auth, money, quirks, writes,
determinism, fault injection and the loopback server.

Expected shapes come from the document's own JSON examples in ``tests/data/webcommander``; money is
recomputed here from the lines and payments with ``Decimal``, never read back from the sandbox's code.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ordersync.sandbox.faults import Fault, FaultConfig, FaultInjector
from ordersync.sandbox.server import SandboxServer
from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID, create_app
from ordersync.sandbox.webcommander.store import WebCommanderStore

DATA = Path(__file__).parents[1] / "data" / "webcommander"
BASE = "http://wc.test"
P = "/external/app/access"
AUTH = {"uuid": DEFAULT_UUID, "accessToken": DEFAULT_TOKEN}
SPACED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}: \d{2}: \d{2}$")
PLAIN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
TWO_DP = re.compile(r"^-?\d+\.\d{2}$")
SUMMARY_KEYS = (
    "subTotal",
    "shippingCost",
    "shippingTax",
    "handlingCost",
    "totalSurcharge",
    "totalDiscount",
    "totalTax",
    "grandTotal",
    "paid",
    "due",
)


def doc(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


LIST_DOC = doc("external_orders_list.json")
SINGLE_DOC = doc("external_order_single.json")
CREATE_REQUEST = doc("external_order_create_request.json")
CREATE_DOC = doc("external_order_create_response.json")
GATEWAYS_DOC = doc("external_payment_gateways.json")
LIST_ORDER = LIST_DOC["orders"][0]


class Shop:
    """A sandbox app driven through httpx's ASGI transport, one ``asyncio.run`` per request."""

    def __init__(self, store: WebCommanderStore, raise_app_exceptions: bool = True, **app_kwargs: Any):
        self.store = store
        self.app: FaultInjector = create_app(store, **app_kwargs)
        self._raise = raise_app_exceptions

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=self._raise)
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(go())

    def get(self, path: str, headers: dict[str, Any] | None = None) -> httpx.Response:
        return self.request("GET", f"{P}/{path}", headers=AUTH if headers is None else headers)

    def post(self, path: str, body: Any, headers: dict[str, Any] | None = None) -> httpx.Response:
        return self.request("POST", f"{P}/{path}", headers=AUTH if headers is None else headers, json=body)

    def all_orders(self) -> list[dict[str, Any]]:
        """Every order in listing order, paged by what each page returns (the host caps ``max``)."""
        orders: list[dict[str, Any]] = []
        while True:
            response = self.get(f"orders?max=-1&offset={len(orders)}")
            assert response.status_code == 200
            page = response.json()["orders"]
            orders += page
            if not page or len(orders) >= response.json()["total"]:
                return orders

    def order(self, order_id: Any) -> dict[str, Any]:
        """``GET order``, checked against the same order in the (cached, pre-encoded) list form."""
        response = self.get(f"order?id={order_id}")
        assert response.status_code == 200, response.text
        single = response.json()["order"]
        listed = next(o for o in self.all_orders() if o["id"] == single["id"])
        for kind in ("billing", "shipping"):
            assert listed[kind]["country"] == single[kind]["country"]["id"]
            assert listed[kind]["state"] == single[kind]["state"]["id"]
        assert {k: v for k, v in listed.items() if k not in ("billing", "shipping")} == {
            k: v for k, v in single.items() if k not in ("billing", "shipping")
        }
        return single


def D(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace(": ", ":"))


def assert_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "message"}
    assert body["status"] == "error"
    assert isinstance(body["message"], str) and body["message"]


# -- money, computed here ----------------------------------------------------------------------------


def expected_sub_total(order: dict[str, Any]) -> Decimal:
    return sum((D(i["price"]) * D(i["quantity"]) for i in order["items"]), Decimal(0))


def expected_tax(order: dict[str, Any]) -> Decimal:
    items = sum((D(i["tax"]) for i in order["items"]), Decimal(0))
    return items + D(order["shippingTax"]) + D(order["handlingTax"])


def expected_grand(order: dict[str, Any]) -> Decimal:
    s = order["orderSummary"]
    return (
        expected_sub_total(order)
        + D(order["shippingCost"])
        + D(order["handlingCost"])
        + D(order["totalSurcharge"])
        - D(s["totalDiscount"])
        + expected_tax(order)
    )


def expected_paid(order: dict[str, Any]) -> Decimal:
    received = sum(
        (
            D(p["amount"])
            for p in order["payments"]
            if p["refundId"] is None and p["status"] in ("success", "paid", "completed", "refunded")
        ),
        Decimal(0),
    )
    refunded = sum((D(p["amount"]) for p in order["payments"] if p["refundId"] is not None), Decimal(0))
    return received - refunded


def assert_money_adds_up(order: dict[str, Any]) -> None:
    s = order["orderSummary"]
    assert set(s) == set(SUMMARY_KEYS)
    for key in SUMMARY_KEYS:
        assert isinstance(s[key], str) and TWO_DP.match(s[key]), (order["id"], key, s[key])
    item_discounts = sum((D(i["discount"]) for i in order["items"]), Decimal(0))
    discount = item_discounts + D(order["discountOnOrder"]) + D(order["discountOnShipping"])
    assert D(s["totalDiscount"]) == discount, order["id"]
    assert D(s["subTotal"]) == expected_sub_total(order), order["id"]
    assert D(s["totalTax"]) == expected_tax(order), order["id"]
    assert D(s["shippingCost"]) == D(order["shippingCost"])
    assert D(s["handlingCost"]) == D(order["handlingCost"])
    assert D(s["totalSurcharge"]) == D(order["totalSurcharge"])
    assert D(s["grandTotal"]) == expected_grand(order), order["id"]
    assert D(s["paid"]) == expected_paid(order), order["id"]
    assert D(s["due"]) == D(s["grandTotal"]) - D(s["paid"]), order["id"]


def test_money_helpers_agree_with_the_documents_own_examples() -> None:
    # The document's refunds predate refundId, so only the totals are checked against it.
    for order in (LIST_ORDER, SINGLE_DOC["order"], CREATE_DOC["order"]):
        s = order["orderSummary"]
        assert D(s["subTotal"]) == expected_sub_total(order)
        assert D(s["totalTax"]) == expected_tax(order)
        assert D(s["grandTotal"]) == expected_grand(order)


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop() -> Shop:
    """Read-only: 53 orders, so pages of 7 leave a short last page."""
    return Shop(WebCommanderStore(orders=53, seed=7))


@pytest.fixture
def fresh() -> Shop:
    return Shop(WebCommanderStore(orders=40, seed=11))


@pytest.fixture(scope="module")
def bulk() -> list[dict[str, Any]]:
    return Shop(WebCommanderStore(orders=500, seed=2024)).all_orders()


# -- 1. envelope fidelity -----------------------------------------------------------------------------


def test_list_envelope_matches_the_documents_list_example(shop: Shop) -> None:
    response = shop.get("orders?max=5&offset=0")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == set(LIST_DOC) == {"status", "total", "max", "offset", "orders"}
    assert body["status"] == "success"
    assert type(body["total"]) is int and body["total"] == 53
    assert body["max"] == "5" and body["offset"] == "0"
    assert len(body["orders"]) == 5


def test_every_order_has_the_documents_keys_at_every_level(shop: Shop, bulk: list[dict[str, Any]]) -> None:
    example_item = LIST_ORDER["items"][0]
    example_payment = LIST_ORDER["payments"][0]
    example_shipment = LIST_ORDER["shipments"][0]
    orders = shop.all_orders() + bulk
    seen_shipments = 0
    for order in orders:
        assert set(order) == set(LIST_ORDER), order["id"]
        assert set(order["billing"]) == set(LIST_ORDER["billing"])
        assert set(order["shipping"]) == set(LIST_ORDER["shipping"])
        assert type(order["billing"]["country"]) is int and type(order["shipping"]["country"]) is int
        assert type(order["billing"]["state"]) is int and type(order["shipping"]["state"]) is int
        assert order["items"]
        for item in order["items"]:
            assert set(item) >= set(example_item), (order["id"], set(example_item) - set(item))
        for payment in order["payments"]:
            assert set(payment) == set(example_payment)
        for shipment in order["shipments"]:
            assert set(shipment) == set(example_shipment)
            seen_shipments += 1
    assert seen_shipments > 0


def test_single_order_has_country_and_state_objects_where_the_list_has_ids(shop: Shop) -> None:
    listed = {o["id"]: o for o in shop.all_orders()}
    example = SINGLE_DOC["order"]
    for order_id in list(listed)[:10]:
        response = shop.get(f"order?id={order_id}")
        assert response.status_code == 200
        body = response.json()
        assert set(body) == set(SINGLE_DOC) == {"order"}
        order = body["order"]
        assert set(order) == set(example)
        assert order["id"] == order_id
        for kind in ("billing", "shipping"):
            address = order[kind]
            assert set(address) == set(example[kind])
            assert isinstance(address["country"], dict) and isinstance(address["state"], dict)
            assert set(address["country"]) == set(example[kind]["country"])
            assert set(address["state"]) == set(example[kind]["state"])
            assert address["country"]["id"] == listed[order_id][kind]["country"]
            assert address["state"]["id"] == listed[order_id][kind]["state"]
            assert address["state"]["country"] == address["country"]["id"]
            assert address["state"]["id"] in address["country"]["state"]
        # Apart from the address objects, the single form is the list form.
        flat = {k: v for k, v in order.items() if k not in ("billing", "shipping")}
        assert flat == {k: v for k, v in listed[order_id].items() if k not in ("billing", "shipping")}


def test_single_order_errors(shop: Shop) -> None:
    assert_error(shop.get("order?id=999999"), 404)
    assert_error(shop.get("order?id=abc"), 400)
    assert_error(shop.get("order"), 400)


# -- 2. pagination ------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_pages_are_disjoint_and_cover_every_order_in_id_order(order: str) -> None:
    shop = Shop(WebCommanderStore(orders=53, seed=7, listing_order=order))
    everything = [o["id"] for o in shop.all_orders()]
    assert len(everything) == 53 and sorted(everything, reverse=order == "newest") == everything
    seen: list[int] = []
    offset = 0
    while True:
        body = shop.get(f"orders?max=7&offset={offset}").json()
        assert body["total"] == 53 and body["max"] == "7" and body["offset"] == str(offset)
        ids = [o["id"] for o in body["orders"]]
        assert len(ids) == min(7, 53 - offset)
        assert not set(ids) & set(seen)
        seen += ids
        offset += 7
        if offset >= 53:
            break
    assert seen == everything


def test_a_capped_host_answers_fewer_than_asked_and_echoes_the_max_asked(shop: Shop) -> None:
    """The default sandbox caps ``max`` at 50, as real hosts do, newest first (the strictest reading)."""
    body = shop.get("orders?max=250&offset=0").json()
    assert body["max"] == "250" and body["total"] == 53 and len(body["orders"]) == 50
    assert [o["id"] for o in body["orders"]] == list(range(53, 3, -1))
    uncapped = Shop(WebCommanderStore(orders=53, seed=7), max_page_size=None)
    assert len(uncapped.get("orders?max=-1&offset=0").json()["orders"]) == 53


def test_max_minus_one_returns_everything_from_the_offset() -> None:
    shop = Shop(WebCommanderStore(orders=53, seed=7), max_page_size=None)
    everything = [o["id"] for o in shop.all_orders()]
    body = shop.get("orders?max=-1&offset=20").json()
    assert body["max"] == "-1" and body["offset"] == "20" and body["total"] == 53
    assert [o["id"] for o in body["orders"]] == everything[20:]


def test_offset_past_the_end_is_an_empty_page_with_the_total(shop: Shop) -> None:
    for offset in (53, 500):
        body = shop.get(f"orders?max=10&offset={offset}").json()
        assert body["orders"] == [] and body["total"] == 53 and body["status"] == "success"


@pytest.mark.parametrize("query", ["max=abc", "max=1.5", "max=0", "max=-2", "offset=-1", "offset=x"])
def test_bad_paging_parameters_are_400(shop: Shop, query: str) -> None:
    assert_error(shop.get(f"orders?{query}"), 400)


# -- 3. auth ------------------------------------------------------------------------------------------

BAD_AUTH = {
    "no uuid": {"accessToken": DEFAULT_TOKEN},
    "no token": {"uuid": DEFAULT_UUID},
    "wrong uuid": {"uuid": "0000-0000-0000-0000", "accessToken": DEFAULT_TOKEN},
    "wrong token": {"uuid": DEFAULT_UUID, "accessToken": DEFAULT_TOKEN[:-1] + "0"},
    "nothing": {},
}


@pytest.mark.parametrize("headers", BAD_AUTH.values(), ids=BAD_AUTH.keys())
def test_bad_credentials_are_401_on_reads_and_writes(fresh: Shop, headers: dict[str, str]) -> None:
    unauthorised = {"status": "error", "message": "Invalid uuid or accessToken"}
    before = fresh.order(1)
    for response in (
        fresh.get("orders?max=5&offset=0", headers=headers),
        fresh.get("order?id=1", headers=headers),
        fresh.post("change-order-Status", {"id": "1", "status": "cancelled"}, headers=headers),
        fresh.post("order-comment-add", {"orderId": "1", "message": "sneaky"}, headers=headers),
    ):
        assert response.status_code == 401
        assert response.json() == unauthorised
    assert fresh.order(1) == before  # refused writes changed nothing


def test_auth_headers_are_case_insensitive_and_custom_credentials_work() -> None:
    shop = Shop(WebCommanderStore(orders=3, seed=1), uuid="U-1", access_token="t0k")
    assert shop.get("orders", headers={"UUID": "U-1", "ACCESSTOKEN": "t0k"}).status_code == 200
    assert shop.get("orders").status_code == 401  # the defaults are not accepted any more


# -- 4. money -----------------------------------------------------------------------------------------


def test_money_adds_up_for_500_generated_orders(bulk: list[dict[str, Any]]) -> None:
    for order in bulk:
        assert_money_adds_up(order)
    # The sample exercises every term of the identities, so none of them holds vacuously.
    payments = [p for o in bulk for p in o["payments"]]
    items = [i for o in bulk for i in o["items"]]
    assert any(p["refundId"] is not None for p in payments)
    assert any(p["status"] == "refunded" and p["refundId"] is None for p in payments)
    assert any(p["status"] in ("pending", "awaiting") for p in payments)
    assert any(D(i["discount"]) > 0 for i in items)
    assert any(not i["isTaxable"] for i in items)
    assert any(D(o["discountOnOrder"]) > 0 for o in bulk)
    assert any(D(o["handlingCost"]) > 0 and D(o["handlingTax"]) > 0 for o in bulk)
    assert any(D(o["totalSurcharge"]) > 0 for o in bulk)
    assert any(D(o["shippingCost"]) > 0 and D(o["shippingTax"]) > 0 for o in bulk)
    assert any(o["orderSummary"]["due"] == "0.00" for o in bulk)
    assert any(D(o["orderSummary"]["due"]) > 0 for o in bulk)


def test_realistic_orders_are_large_and_add_up() -> None:
    shop = Shop(WebCommanderStore(orders=50, seed=99, realistic=True))
    response = shop.get("orders?max=-1&offset=0")
    orders = response.json()["orders"]
    assert len(orders) == 50
    sizes = []
    for order in orders:
        assert 8 <= len(order["items"]) <= 12
        assert_money_adds_up(order)
        sizes.append(len(json.dumps(order, separators=(",", ":"))))
    assert 5_000 <= sum(sizes) / len(sizes) <= 10_000
    assert min(sizes) >= 4_000 and max(sizes) <= 12_000
    assert 250_000 <= len(response.content) <= 600_000


# -- 5. quirks ----------------------------------------------------------------------------------------


def test_generated_data_carries_the_documents_quirks(bulk: list[dict[str, Any]]) -> None:
    stamps = [o[k] for o in bulk for k in ("created", "updated", "lastReminderTime")]
    stamps += [p["payingDate"] for o in bulk for p in o["payments"]]
    assert all(SPACED.match(s) or PLAIN.match(s) for s in stamps)
    assert any(SPACED.match(s) for s in stamps) and any(PLAIN.match(s) for s in stamps)
    customer_ids = [o["customerId"] for o in bulk]
    assert any(isinstance(c, str) and c.isdigit() for c in customer_ids)
    assert any(type(c) is int for c in customer_ids)
    guests = [o for o in bulk if o["customerId"] is None]
    assert guests and all(o["customerName"] == "Guest Customer" for o in guests)
    variations = [i["variations"] for o in bulk for i in o["items"]]
    assert None in variations and [] in variations and any(v for v in variations)


def test_some_list_pages_escape_at_signs_and_still_parse(shop: Shop) -> None:
    escaped = plain = 0
    for offset in range(12):
        response = shop.get(f"orders?max=1&offset={offset}")
        order = json.loads(response.content)["orders"][0]  # strict parse of the raw bytes
        assert "@" in order["billing"]["email"] and "\\u0040" not in order["billing"]["email"]
        if b"\\u0040" in response.content:
            escaped += 1
            assert b"@" not in response.content
        else:
            plain += 1
            assert b"@" in response.content
    assert escaped and plain
    assert b"\\u0040" in shop.get("orders?max=-1&offset=0").content


# -- 6. writes ----------------------------------------------------------------------------------------


def test_change_order_status(fresh: Shop) -> None:
    before = fresh.order(3)
    target = "processing" if before["orderStatus"] != "processing" else "pending"
    response = fresh.post("change-order-Status", {"id": "3", "status": target})
    assert response.status_code == 200 and response.json() == {"status": "success"}
    after = fresh.order(3)
    assert after["orderStatus"] == target
    assert when(after["updated"]) > when(before["updated"])
    # The cached list bytes follow the write.
    listed = next(o for o in fresh.all_orders() if o["id"] == 3)
    assert listed["orderStatus"] == target and listed["updated"] == after["updated"]

    assert fresh.post("change-order-Status", {"id": 3, "status": "completed"}).status_code == 200
    again = fresh.order(3)
    assert again["orderStatus"] == "completed"
    assert when(again["updated"]) > when(after["updated"])  # strictly later, even within one second

    assert_error(fresh.post("change-order-Status", {"id": "3", "status": "shipped"}), 400)
    assert_error(fresh.post("change-order-Status", {"id": "3"}), 400)
    assert_error(fresh.post("change-order-Status", {"id": "99999", "status": "completed"}), 404)
    assert_error(fresh.post("change-order-Status", {"id": "x", "status": "completed"}), 400)
    assert fresh.order(3)["orderStatus"] == "completed"


def test_order_comment_add(fresh: Shop) -> None:
    before = fresh.order(5)
    first = fresh.post("order-comment-add", {"orderId": "5", "message": "quick deliver"})
    second = fresh.post("order-comment-add", {"orderId": 5, "message": "second note"})
    assert first.status_code == second.status_code == 200
    a, b = first.json(), second.json()
    assert set(a) == {"status", "id"} and a["status"] == "success" and type(a["id"]) is int
    assert b["id"] != a["id"]
    listed_ids = {c["id"] for o in fresh.all_orders() for c in o["orderComment"]}
    assert a["id"] in listed_ids and b["id"] in listed_ids
    after = fresh.order(5)
    added = after["orderComment"][len(before["orderComment"]) :]
    assert [(c["id"], c["content"]) for c in added] == [(a["id"], "quick deliver"), (b["id"], "second note")]
    assert when(after["updated"]) > when(before["updated"])
    assert after["orderSummary"] == before["orderSummary"]
    assert_error(fresh.post("order-comment-add", {"orderId": "5", "message": "  "}), 400)
    assert_error(fresh.post("order-comment-add", {"orderId": "99999", "message": "hi"}), 404)


def unpaid_order(shop: Shop) -> dict[str, Any]:
    for order in shop.all_orders():
        if order["paymentStatus"] == "unpaid" and D(order["orderSummary"]["grandTotal"]) > 10:
            return order
    raise AssertionError("no unpaid order in the sample")


def test_make_order_payment(fresh: Shop) -> None:
    order = unpaid_order(fresh)
    grand = D(order["orderSummary"]["grandTotal"])
    half = (grand / 2).quantize(Decimal("0.01"))
    body = {"orderId": str(order["id"]), "paymentGateway": "PIS", "date": "2023-02-01 20:38:17"}
    response = fresh.post("make-order-payment", {**body, "amount": str(half), "isNotify": "false"})
    assert response.status_code == 200
    reply = response.json()
    assert reply["status"] == "success" and type(reply["id"]) is int
    after = fresh.order(order["id"])
    new = [p for p in after["payments"] if p["id"] == reply["id"]]
    assert len(new) == 1
    assert new[0]["status"] == "success" and new[0]["refundId"] is None and new[0]["gatewayCode"] == "PIS"
    assert D(new[0]["amount"]) == half
    assert when(new[0]["payingDate"]) == datetime(2023, 2, 1, 20, 38, 17)
    assert after["paymentStatus"] == "partially_paid"
    assert D(after["orderSummary"]["paid"]) == D(order["orderSummary"]["paid"]) + half
    assert D(after["orderSummary"]["due"]) == grand - half
    assert when(after["updated"]) > when(order["updated"])
    assert_money_adds_up(after)

    undated = {"orderId": order["id"], "paymentGateway": "CRD", "amount": str(grand - half)}
    assert_error(fresh.post("make-order-payment", undated), 400)  # the document always sends a date
    rest = fresh.post("make-order-payment", {**undated, "date": "2023-02-02 09:00:00"})
    assert rest.status_code == 200
    paid = fresh.order(order["id"])
    assert paid["paymentStatus"] == "paid" and paid["orderSummary"]["due"] == "0.00"

    assert_error(fresh.post("make-order-payment", {**body, "amount": "10", "paymentGateway": "NOPE"}), 400)
    assert_error(fresh.post("make-order-payment", {**body, "amount": "-5"}), 400)
    assert_error(fresh.post("make-order-payment", {**body, "amount": "ten"}), 400)
    assert_error(fresh.post("make-order-payment", {**body, "amount": "5", "date": "01/02/2023"}), 400)
    assert_error(fresh.post("make-order-payment", {**body, "amount": "5", "orderId": "99999"}), 404)
    assert fresh.order(order["id"])["payments"] == paid["payments"]


def refundable_order(shop: Shop) -> tuple[dict[str, Any], dict[str, Any]]:
    for order in shop.all_orders():
        payments = order["payments"]
        if len(payments) == 1 and payments[0]["status"] == "success" and D(payments[0]["amount"]) > 10:
            return order, payments[0]
    raise AssertionError("no singly paid order in the sample")


def test_order_payment_refund(fresh: Shop) -> None:
    order, payment = refundable_order(fresh)
    amount = D(payment["amount"])
    part = Decimal("5.50")
    response = fresh.post("order-payment-refund", {"id": str(payment["id"]), "amount": str(part)})
    assert response.status_code == 200
    assert response.json() == {"status": "success", "haveToReAdjustInvetory": False, "id": payment["id"]}
    after = fresh.order(order["id"])
    refunds = [p for p in after["payments"] if p["refundId"] == payment["id"]]
    assert len(refunds) == 1 and D(refunds[0]["amount"]) == part
    assert refunds[0]["id"] != payment["id"]
    original = next(p for p in after["payments"] if p["id"] == payment["id"])
    assert original["status"] == "success"  # only partly refunded
    assert D(after["orderSummary"]["paid"]) == D(order["orderSummary"]["paid"]) - part
    assert when(after["updated"]) > when(order["updated"])
    assert_money_adds_up(after)

    too_much = fresh.post("order-payment-refund", {"id": payment["id"], "amount": str(amount - part + 1)})
    assert_error(too_much, 400)
    assert fresh.order(order["id"])["payments"] == after["payments"]

    rest = fresh.post("order-payment-refund", {"id": payment["id"], "amount": str(amount - part)})
    assert rest.status_code == 200
    done = fresh.order(order["id"])
    assert next(p for p in done["payments"] if p["id"] == payment["id"])["status"] == "refunded"
    assert sum(D(p["amount"]) for p in done["payments"] if p["refundId"] == payment["id"]) == amount
    assert done["orderSummary"]["paid"] == "0.00"
    assert done["paymentStatus"] == "refunded"
    assert_money_adds_up(done)

    assert_error(fresh.post("order-payment-refund", {"id": payment["id"], "amount": "0.01"}), 400)
    assert_error(fresh.post("order-payment-refund", {"id": "987654321", "amount": "1"}), 404)
    assert_error(fresh.post("order-payment-refund", {"id": payment["id"], "amount": "0"}), 400)


def test_refunding_an_unpaid_payment_is_refused(fresh: Shop) -> None:
    order = unpaid_order(fresh)
    pending = order["payments"][0]
    assert pending["status"] not in ("success", "paid", "completed", "refunded")
    assert_error(fresh.post("order-payment-refund", {"id": pending["id"], "amount": "1"}), 400)
    assert fresh.order(order["id"])["payments"] == order["payments"]


def test_change_order_payment_status(fresh: Shop) -> None:
    before = fresh.order(7)
    for status in ("completed", "cancelled"):  # the document's two examples
        response = fresh.post("change-order-payment-status", {"id": "7", "status": status})
        assert response.status_code == 200 and response.json() == {"status": "success"}
        assert fresh.order(7)["paymentStatus"] == status
    assert when(fresh.order(7)["updated"]) > when(before["updated"])
    assert_error(fresh.post("change-order-payment-status", {"id": "7", "status": "maybe"}), 400)
    assert_error(fresh.post("change-order-payment-status", {"id": "7", "status": "paid"}), 400)
    assert_error(fresh.post("change-order-payment-status", {"id": "99999", "status": "completed"}), 404)
    assert fresh.order(7)["paymentStatus"] == "cancelled"


def test_order_create_with_the_documents_request(fresh: Shop) -> None:
    before_ids = [o["id"] for o in fresh.all_orders()]
    response = fresh.post("order-create", CREATE_REQUEST)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == set(CREATE_DOC) and body["status"] == "success" and body["paymentData"] == {}
    order, example = body["order"], CREATE_DOC["order"]
    assert set(order) == set(example)
    assert order["id"] not in before_ids and order["id"] > max(before_ids)
    for kind in ("billing", "shipping"):
        assert set(order[kind]) == set(example[kind])
        assert set(order[kind]["state"]) == set(example[kind]["state"])
        assert order[kind]["state"]["id"] == 7
    assert len(order["items"]) == 1
    item = order["items"][0]
    assert set(item) == set(example["items"][0])
    assert (D(item["price"]), D(item["tax"]), D(item["actualPrice"])) == (
        Decimal("605.45"),
        Decimal("60.55"),
        Decimal("666"),
    )
    assert item["productId"] == 495 and item["quantity"] == 1 and item["productName"] == "API Product"
    assert order["orderSummary"] == example["orderSummary"]
    assert D(order["actualTax"]) == D(example["actualTax"])
    assert (order["orderStatus"], order["paymentStatus"], order["customerId"]) == ("pending", "unpaid", 6)
    assert len(order["payments"]) == 1
    payment = order["payments"][0]
    assert set(payment) == set(example["payments"][0])
    assert (D(payment["amount"]), payment["status"], payment["gatewayCode"], payment["order"]) == (
        Decimal("666"),
        "awaiting",
        "PIS",
        order["id"],
    )
    assert_money_adds_up(order)

    listing = fresh.get("orders?max=-1&offset=0").json()
    assert listing["total"] == len(before_ids) + 1
    assert listing["orders"][0]["id"] == order["id"]  # newest first: a new order is at offset 0
    assert listing["orders"][0]["orderSummary"] == example["orderSummary"]
    assert fresh.get(f"order?id={order['id']}").json()["order"] == order


def test_order_create_tax_scales_with_quantity_and_validates(fresh: Shop) -> None:
    request = copy.deepcopy(CREATE_REQUEST)
    request["items"][0]["quantity"] = 3
    request["items"].append({"productId": 22, "price": "24.95", "quantity": 2, "isTaxable": "false"})
    order = fresh.post("order-create", request).json()["order"]
    assert_money_adds_up(order)
    assert D(order["orderSummary"]["grandTotal"]) == Decimal("666") * 3 + Decimal("24.95") * 2
    assert D(order["items"][1]["tax"]) == 0
    bad = copy.deepcopy(CREATE_REQUEST)
    bad["items"] = []
    assert_error(fresh.post("order-create", bad), 400)
    bad["items"] = [{"price": 5}]
    assert_error(fresh.post("order-create", bad), 400)
    assert_error(
        fresh.post("order-create", {k: v for k, v in CREATE_REQUEST.items() if "Address" not in k}), 400
    )
    assert_error(fresh.request("POST", f"{P}/order-create", headers=AUTH, content=b"{not json"), 400)


def test_payment_gateways_list_and_update(fresh: Shop) -> None:
    response = fresh.get("payment-gateways?max=-1&offset=0")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == set(GATEWAYS_DOC)
    assert type(body["total"]) is int and body["total"] == len(body["paymentGatewayList"]) > 1
    assert body["max"] == "-1" and body["offset"] == "0"
    example = GATEWAYS_DOC["paymentGatewayList"][0]
    for gateway in body["paymentGatewayList"]:
        assert set(gateway) == set(example)
        assert PLAIN.match(gateway["updated"])
    assert {"code": "PIS", "name": "Pay In Store", "id": 1}.items() <= body["paymentGatewayList"][0].items()
    one = fresh.get("payment-gateways?max=1&offset=1").json()
    assert one["paymentGatewayList"] == body["paymentGatewayList"][1:2] and one["total"] == body["total"]

    target = next(g for g in body["paymentGatewayList"] if g["code"] == "CRD")
    update = {
        "id": target["id"],
        "isEnabled": "false",
        "isDefault": "true",
        "metafield.CRD.creditCardProcessor": "SECUREPAY_OAUTH2",
        "availableFor": "everyone",
        "surchargeType": "flat_surcharge",
        "flatSurcharge": 1.5,
        "percentSurcharge": 0.0,
        "pendingMessage": "",
        "successMessage": "<p>Charges will appear on your credit card as <strong>*WEBALIVE*</strong></p>",
    }
    reply = fresh.post("update-payment-gateway", update)
    assert reply.status_code == 200 and reply.json() == {
        "status": "success",
        "message": "Successfully Updated",
    }
    changed = next(
        g
        for g in fresh.get("payment-gateways?max=-1").json()["paymentGatewayList"]
        if g["id"] == target["id"]
    )
    assert changed["isEnabled"] is False and changed["isDefault"] is True
    assert changed["surchargeType"] == "flat_surcharge" and changed["flatSurcharge"] == 1.5
    assert changed["pendingMessage"] == "" and changed["successMessage"] == update["successMessage"]
    assert PLAIN.match(changed["updated"]) and changed["updated"] > target["updated"]
    assert set(changed) == set(example)
    assert_error(fresh.post("update-payment-gateway", {"id": 4242, "isEnabled": "true"}), 404)


# -- 7. determinism -----------------------------------------------------------------------------------


def test_same_seed_same_bytes_different_seed_different_bytes() -> None:
    def first_page(seed: int) -> bytes:
        return Shop(WebCommanderStore(orders=30, seed=seed)).get("orders?max=10&offset=0").content

    assert first_page(123) == first_page(123)
    assert first_page(123) != first_page(124)


# -- 8. faults ----------------------------------------------------------------------------------------


def test_scripted_faults_are_served_in_turn_then_the_real_answer(shop: Shop) -> None:
    faulty = Shop(shop.store)
    faulty.app.script("orders", [Fault.server_error(503), Fault.rate_limited(2)])
    first = faulty.get("orders?max=2")
    second = faulty.get("orders?max=2")
    third = faulty.get("orders?max=2")
    assert first.status_code == 503 and first.json()["status"] == "error"
    assert second.status_code == 429 and second.headers["Retry-After"] == "2"
    assert third.status_code == 200 and len(third.json()["orders"]) == 2
    assert faulty.app.faults_served == 2


def test_scripted_faults_only_hit_matching_paths(shop: Shop) -> None:
    faulty = Shop(shop.store)
    faulty.app.script("orders", [Fault.server_error(500)])
    assert faulty.get("order?id=1").status_code == 200  # "/order?id=1" does not contain "orders"
    assert faulty.get("orders").status_code == 500


def test_html_and_broken_json_faults(shop: Shop) -> None:
    faulty = Shop(shop.store)
    faulty.app.script("orders", [Fault.html(), Fault.bad_json()])
    html = faulty.get("orders")
    assert html.status_code == 502 and html.headers["content-type"].startswith("text/html")
    assert b"<html" in html.content
    broken = faulty.get("orders")
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.content)


def test_random_5xx_rate_of_one_always_fails(shop: Shop) -> None:
    faulty = Shop(shop.store, faults=FaultConfig(rate_5xx=1.0, seed=3))
    statuses = {faulty.get(f"orders?offset={n}").status_code for n in range(10)}
    assert statuses == {503}


def test_latency_delays_each_request() -> None:
    faulty = Shop(WebCommanderStore(orders=2, seed=1), faults=FaultConfig(latency_ms=150))
    started = time.perf_counter()
    assert faulty.get("orders").status_code == 200
    assert time.perf_counter() - started >= 0.15


def test_request_count_is_per_path(shop: Shop) -> None:
    counted = Shop(shop.store)
    for offset in range(3):
        counted.get(f"orders?offset={offset}")
    counted.get("order?id=1")
    counted.get("orders", headers={})  # refused requests count too
    assert counted.app.request_count[f"{P}/orders"] == 4
    assert counted.app.request_count[f"{P}/order"] == 1
    assert counted.app.total_requests("/order") == 5


# -- 9. a real loopback server ------------------------------------------------------------------------


def test_sandbox_server_serves_over_loopback_and_stops() -> None:
    with SandboxServer(create_app(WebCommanderStore(orders=12, seed=4, listing_order="oldest"))) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}" and server.port > 0
        with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=5) as client:
            pages = [client.get(f"{P}/orders", params={"max": 5, "offset": o}).json() for o in (0, 5, 10)]
            assert client.get(f"{P}/orders").json()["total"] == 12
    assert [len(p["orders"]) for p in pages] == [5, 5, 2]
    assert [o["id"] for p in pages for o in p["orders"]] == list(range(1, 13))
    assert not server._thread.is_alive()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.base_url}{P}/orders", headers=AUTH, timeout=1)


# -- bugs found in the sandbox, now fixed ---------------------------------------------------------------


def test_non_ascii_credentials_are_401_not_500() -> None:
    shop = Shop(WebCommanderStore(orders=2, seed=1), raise_app_exceptions=False)
    response = shop.get(
        "orders", headers={"uuid": "F8A3-A88E-C6EF-B1C\xe9".encode("latin-1"), "accessToken": "x"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize("field", ["shippingCost", "handlingCost", "shippingTax", "totalSurcharge"])
def test_order_create_with_a_non_numeric_cost_is_400(field: str) -> None:
    shop = Shop(WebCommanderStore(orders=2, seed=1), raise_app_exceptions=False)
    response = shop.post("order-create", {**CREATE_REQUEST, field: "free"})
    assert response.status_code == 400


def test_update_gateway_with_a_non_numeric_surcharge_is_400() -> None:
    shop = Shop(WebCommanderStore(orders=2, seed=1), raise_app_exceptions=False)
    response = shop.post("update-payment-gateway", {"id": 2, "flatSurcharge": "abc"})
    assert response.status_code == 400


def test_make_payment_with_a_list_gateway_is_400() -> None:
    shop = Shop(WebCommanderStore(orders=2, seed=1), raise_app_exceptions=False)
    response = shop.post("make-order-payment", {"orderId": "1", "paymentGateway": ["PIS"], "amount": "1"})
    assert response.status_code == 400


def test_order_create_response_country_is_an_object_as_in_the_document(fresh: Shop) -> None:
    order = fresh.post("order-create", CREATE_REQUEST).json()["order"]
    for kind in ("billing", "shipping"):
        assert isinstance(order[kind]["country"], dict)
        assert set(order[kind]["country"]) == set(CREATE_DOC["order"][kind]["country"])
        assert order[kind]["country"]["id"] == 11


def test_order_status_change_keeps_a_manually_set_payment_status(fresh: Shop) -> None:
    order = unpaid_order(fresh)
    assert (
        fresh.post("change-order-payment-status", {"id": order["id"], "status": "completed"}).status_code
        == 200
    )
    assert fresh.post("change-order-Status", {"id": order["id"], "status": "processing"}).status_code == 200
    assert fresh.order(order["id"])["paymentStatus"] == "completed"
