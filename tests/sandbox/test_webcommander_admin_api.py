"""The sandbox's v4 admin API (webcommander-v4-admin-orders.txt) and its Idempotency-Key behaviour:
OAuth2 client credentials, bearer checks with expiry, send-invoice, comments, cancel, and replays."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest

from ordersync.sandbox.faults import Fault
from ordersync.sandbox.webcommander.admin_api import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID, create_app
from ordersync.sandbox.webcommander.store import WebCommanderStore

APP_AUTH = {"uuid": DEFAULT_UUID, "accessToken": DEFAULT_TOKEN}
P = "/external/app/access"
TOKEN = "/api/v4/oauth2/token"
ADMIN = "/api/v4/admin/orders"
INVALID_TOKEN = {"error": "invalid_token"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def basic(client_id: str, secret: str) -> dict[str, str]:
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def grant(**extra: str) -> dict[str, str]:
    """The token request WebCommander's authentication page shows: a JSON body."""
    return {
        "grant_type": "client_credentials",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        **extra,
    }


class Shop:
    def __init__(self, **app_kwargs: Any) -> None:
        self.store = WebCommanderStore(orders=12, seed=3)
        self.clock = Clock()
        self.app = create_app(self.store, token_lifetime=60, clock=self.clock, **app_kwargs)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://wc.test") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(go())

    def token(self) -> str:
        response = self.request("POST", TOKEN, json=grant())
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def v4(self, path: str, body: Any = None, token: str | None = None, **headers: str) -> httpx.Response:
        auth = {"Authorization": f"Bearer {token or self.token()}"}
        return self.request("POST", path, json=body, headers={**auth, **headers})

    def app_post(self, endpoint: str, body: Any, **headers: str) -> httpx.Response:
        return self.request("POST", f"{P}/{endpoint}", json=body, headers={**APP_AUTH, **headers})

    def listed(self, order_id: int) -> dict[str, Any]:
        response = self.request("GET", f"{P}/orders?max=-1&offset=0", headers=APP_AUTH)
        return next(o for o in response.json()["orders"] if o["id"] == order_id)


@pytest.fixture
def shop() -> Shop:
    return Shop()


# -- OAuth2 token endpoint ----------------------------------------------------------------------------


def test_the_published_json_token_request_gets_a_token_and_a_rotating_refresh_token(shop: Shop) -> None:
    first = shop.request("POST", TOKEN, json=grant())
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    body = first.json()
    assert set(body) == {"access_token", "refresh_token", "expires_in"} and body["expires_in"] == 60
    refresh = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    renewed = shop.request("POST", TOKEN, json=refresh)
    assert renewed.status_code == 200 and renewed.json()["access_token"] != body["access_token"]
    again = shop.request("POST", TOKEN, json=refresh)  # a refresh token works once
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # The form-urlencoded reading is not taken by default: the strictest reading is JSON only.
    form = shop.request(
        "POST",
        TOKEN,
        data={"grant_type": "client_credentials"},
        headers=basic(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    )
    assert form.status_code == 415
    wrong = shop.request("POST", TOKEN, json=grant(client_secret="nope"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


def test_client_credentials_by_basic_or_form_body_get_a_bearer_token() -> None:
    shop = Shop(token_form=True)
    by_header = shop.request(
        "POST",
        TOKEN,
        data={"grant_type": "client_credentials"},
        headers=basic(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    )
    by_body = shop.request(
        "POST",
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
        },
    )
    for response in (by_header, by_body):
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"access_token", "refresh_token", "expires_in"}
        assert body["expires_in"] == 60
        assert response.headers["cache-control"] == "no-store"  # RFC 6749 §5.1
    assert by_header.json()["access_token"] != by_body.json()["access_token"]


@pytest.mark.parametrize(
    "headers, form",
    [
        (basic(DEFAULT_CLIENT_ID, "wrong"), {}),
        (basic("someone-else", DEFAULT_CLIENT_SECRET), {}),
        ({}, {"client_id": DEFAULT_CLIENT_ID, "client_secret": "wrong"}),
        ({}, {}),
        ({"Authorization": "Basic not-base64!"}, {}),
    ],
    ids=["bad secret", "bad id", "bad secret in body", "no credentials", "garbled header"],
)
def test_a_wrong_client_is_401_invalid_client(headers: dict[str, str], form: dict[str, str]) -> None:
    shop = Shop(token_form=True)
    response = shop.request("POST", TOKEN, data={"grant_type": "client_credentials", **form}, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")
    assert shop.store.replies == {}


def test_other_grants_and_doubled_credentials_are_400() -> None:
    shop = Shop(token_form=True)
    creds = basic(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    password = shop.request("POST", TOKEN, data={"grant_type": "password"}, headers=creds)
    assert password.status_code == 400 and password.json()["error"] == "unsupported_grant_type"
    missing = shop.request("POST", TOKEN, data={"client_id": DEFAULT_CLIENT_ID})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    twice = shop.request(
        "POST",
        TOKEN,
        data={"grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID},
        headers=creds,
    )
    assert twice.status_code == 400 and twice.json()["error"] == "invalid_request"


def test_custom_client_credentials_replace_the_defaults() -> None:
    shop = Shop(client_id="mine", client_secret="s3cr3t with spaces&more")
    ok = shop.request("POST", TOKEN, json=grant(client_id="mine", client_secret="s3cr3t with spaces&more"))
    assert ok.status_code == 200
    default = shop.request("POST", TOKEN, json=grant())
    assert default.status_code == 401


# -- bearer tokens ------------------------------------------------------------------------------------


def test_missing_unknown_and_expired_tokens_are_401_invalid_token(shop: Shop) -> None:
    token = shop.token()
    before = shop.store.get(1)
    missing = shop.request("POST", f"{ADMIN}/1/cancel")
    unknown = shop.v4(f"{ADMIN}/1/cancel", token="not-a-token")
    app_credentials = shop.request("POST", f"{ADMIN}/1/cancel", headers=APP_AUTH)
    shop.clock.now += 59
    assert shop.v4(f"{ADMIN}/1/comments", {"content": "still valid"}, token=token).status_code == 200
    shop.clock.now += 1
    expired = shop.v4(f"{ADMIN}/1/cancel", token=token)
    for response in (missing, unknown, app_credentials, expired):
        assert response.status_code == 401
        assert response.json() == INVALID_TOKEN
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert shop.store.get(1)["orderStatus"] == before["orderStatus"]
    assert shop.v4(f"{ADMIN}/1/cancel").status_code == 204  # a new token works


# -- the v4 endpoints ---------------------------------------------------------------------------------


def test_send_invoice_answers_success_and_records_the_invoice(shop: Shop) -> None:
    before = shop.store.get(4)
    body = {
        "order_id": "4",
        "payment_settings": {"payment_method_options": None},
        "payment_status": "unpaid",
        "notes": "Pay within 14 days",
    }
    response = shop.v4(f"{ADMIN}/4/send-invoice", body)
    assert response.status_code == 200 and response.json() == {"status": "success"}
    [invoice] = shop.store.invoices
    assert (invoice["order_id"], invoice["payment_status"], invoice["notes"]) == (4, "unpaid", body["notes"])
    assert invoice["sent_at"]
    assert shop.store.get(4)["updated"] != before["updated"]
    mismatch = shop.v4(f"{ADMIN}/4/send-invoice", {**body, "order_id": "5"})
    assert mismatch.status_code == 400 and mismatch.json()["status"] == "error"
    assert len(shop.store.invoices) == 1


def test_comments_are_stored_with_their_visibility_and_listed_in_both_shapes(shop: Shop) -> None:
    token = shop.token()
    before = shop.listed(2)
    visible = shop.v4(f"{ADMIN}/2/comments", {"id": 2, "content": "Shipped today", "flagged": True}, token)
    internal = shop.v4(f"{ADMIN}/2/comments", {"id": 2, "content": "check stock", "flagged": False}, token)
    customer = shop.v4("/api/v4/orders/2/comments", {"id": 2, "content": "from the shopfront"}, token)
    assert visible.status_code == internal.status_code == customer.status_code == 200
    comments = customer.json()["comments"]
    for comment in comments:
        assert set(comment) == {
            "id",
            "content",
            "admin_name",
            "is_visible_to_customer",
            "is_admin",
            "created",
        }
    added = comments[len(before["orderComment"]) :]
    assert [(c["content"], c["is_visible_to_customer"], c["is_admin"]) for c in added] == [
        ("Shipped today", True, True),
        ("check stock", False, True),
        ("from the shopfront", False, False),
    ]
    assert [c["content"] for c in visible.json()["comments"]][-1] == "Shipped today"
    listed = shop.listed(2)
    assert [(c["id"], c["content"], c["isVisibleToCustomer"]) for c in listed["orderComment"][-3:]] == [
        (c["id"], c["content"], c["is_visible_to_customer"]) for c in added
    ]
    assert listed["updated"] != before["updated"]
    assert listed["orderSummary"] == before["orderSummary"]
    for bad in ({"content": " "}, {"content": "x", "flagged": "yes"}, {"id": 3, "content": "x"}):
        response = shop.v4(f"{ADMIN}/2/comments", bad, token)
        assert response.status_code == 400 and response.json()["status"] == "error"


def test_cancel_is_204_without_a_body_on_both_paths(shop: Shop) -> None:
    token = shop.token()
    for order_id, prefix in ((6, ADMIN), (7, "/api/v4/orders")):
        before = shop.store.get(order_id)
        response = shop.v4(f"{prefix}/{order_id}/cancel", token=token)
        assert response.status_code == 204 and response.content == b""
        after = shop.listed(order_id)
        assert after["orderStatus"] == "cancelled" and after["updated"] != before["updated"]


@pytest.mark.parametrize("path", ["send-invoice", "comments", "cancel"])
def test_unknown_orders_are_404_in_the_apps_error_envelope(shop: Shop, path: str) -> None:
    response = shop.v4(f"{ADMIN}/99999/{path}", {"content": "x"})
    assert response.status_code == 404
    assert response.json() == {"status": "error", "message": "Order not found"}


# -- Idempotency-Key ----------------------------------------------------------------------------------


def test_a_repeated_key_replays_the_first_answer_without_a_second_write(shop: Shop) -> None:
    body = {"orderId": "3", "message": "once only"}
    first = shop.app_post("order-comment-add", body, **{"Idempotency-Key": "k-1"})
    again = shop.app_post("order-comment-add", body, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert [c["content"] for c in shop.store.get(3)["orderComment"]].count("once only") == 1
    other = shop.app_post("order-comment-add", body, **{"Idempotency-Key": "k-2"})
    assert other.json()["id"] != first.json()["id"]  # another key is another write
    no_key = shop.app_post("order-comment-add", body)
    assert no_key.json()["id"] not in (first.json()["id"], other.json()["id"])


def test_a_key_reused_with_another_body_or_path_is_422(shop: Shop) -> None:
    key = {"Idempotency-Key": "reused"}
    assert shop.app_post("change-order-Status", {"id": "3", "status": "processing"}, **key).status_code == 200
    other_body = shop.app_post("change-order-Status", {"id": "3", "status": "completed"}, **key)
    other_path = shop.app_post("change-order-payment-status", {"id": "3", "status": "processing"}, **key)
    for response in (other_body, other_path):
        assert response.status_code == 422
        body = response.json()
        assert set(body) == {"status", "message"} and body["status"] == "error"
    assert shop.store.get(3)["orderStatus"] == "processing"
    # The same JSON in another key order or spacing is the same request.
    same = shop.request(
        "POST",
        f"{P}/change-order-Status",
        content=b'{ "status": "processing",  "id": "3" }',
        headers={**APP_AUTH, **key, "Content-Type": "application/json"},
    )
    assert same.status_code == 200 and same.headers["idempotent-replayed"] == "true"


def test_a_request_cut_off_before_its_body_arrived_is_not_answered_nor_its_key_spent(shop: Shop) -> None:
    """The client died (kill -9) between sending its headers and its body: nothing is written, nothing
    stored under the key, and the client's retry of the whole request is done once. Answering the cut
    request (a 400) and storing it made the retry a 422 and the order was never created."""
    body = b'{"orderId": "3", "message": "after a crash"}'
    headers = [(b"uuid", DEFAULT_UUID.encode()), (b"accesstoken", DEFAULT_TOKEN.encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"{P}/order-comment-add",
        "raw_path": f"{P}/order-comment-add".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            *headers,
            (b"idempotency-key", b"cut"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("wc.test", 80),
    }
    messages = [{"type": "http.request", "body": body[:10], "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(shop.app(scope, receive, send))
    assert sent == []
    assert "after a crash" not in [c["content"] for c in shop.store.get(3)["orderComment"]]
    retry = shop.app_post(
        "order-comment-add", {"orderId": "3", "message": "after a crash"}, **{"Idempotency-Key": "cut"}
    )
    assert retry.status_code == 200 and "idempotent-replayed" not in retry.headers
    assert [c["content"] for c in shop.store.get(3)["orderComment"]].count("after a crash") == 1


def test_v4_writes_replay_too_and_refusals_are_replayed_as_refusals(shop: Shop) -> None:
    token = shop.token()
    key = {"Idempotency-Key": "v4-key"}
    first = shop.v4(f"{ADMIN}/5/comments", {"content": "hello", "flagged": True}, token, **key)
    shop.clock.now += 3600  # a new token, the same client: the key still belongs to it
    again = shop.v4(f"{ADMIN}/5/comments", {"content": "hello", "flagged": True}, **key)
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert [c["content"] for c in shop.store.get(5)["orderComment"]].count("hello") == 1
    cancel = shop.v4(f"{ADMIN}/5/cancel", token=shop.token(), **{"Idempotency-Key": "c"})
    replay = shop.v4(f"{ADMIN}/5/cancel", **{"Idempotency-Key": "c"})
    assert (cancel.status_code, replay.status_code, replay.content) == (204, 204, b"")
    refused = shop.app_post(
        "change-order-Status", {"id": "5", "status": "shipped"}, **{"Idempotency-Key": "r"}
    )
    assert refused.status_code == 400
    assert shop.app_post(
        "change-order-Status", {"id": "5", "status": "shipped"}, **{"Idempotency-Key": "r"}
    ).content == (refused.content)


def test_keys_are_checked_after_credentials_and_belong_to_their_client(shop: Shop) -> None:
    key = {"Idempotency-Key": "shared"}
    mine = shop.app_post("order-comment-add", {"orderId": "1", "message": "mine"}, **key)
    assert mine.status_code == 200
    thief = shop.request(
        "POST",
        f"{P}/order-comment-add",
        json={"orderId": "1", "message": "mine"},
        headers={"uuid": DEFAULT_UUID, "accessToken": "wrong", **key},
    )
    assert thief.status_code == 401 and thief.json()["status"] == "error"  # no replay of another's answer
    v4 = shop.v4(f"{ADMIN}/1/comments", {"content": "v4 comment"}, **key)
    assert v4.status_code == 200 and "idempotent-replayed" not in v4.headers  # another client, another key


def test_faults_come_before_the_keys_so_a_retry_after_one_still_writes_once(shop: Shop) -> None:
    shop.app.script("order-comment-add", [Fault.server_error(503)])
    key = {"Idempotency-Key": "after-503"}
    body = {"orderId": "8", "message": "through a fault"}
    assert shop.app_post("order-comment-add", body, **key).status_code == 503
    ok = shop.app_post("order-comment-add", body, **key)
    replay = shop.app_post("order-comment-add", body, **key)
    assert ok.status_code == 200 and "idempotent-replayed" not in ok.headers
    assert replay.content == ok.content
    assert [c["content"] for c in shop.store.get(8)["orderComment"]].count("through a fault") == 1


def test_a_token_request_is_not_an_idempotent_write(shop: Shop) -> None:
    tokens = {
        shop.request("POST", TOKEN, json=grant(), headers={"Idempotency-Key": "t"}).json()["access_token"]
        for _ in range(2)
    }
    assert len(tokens) == 2
