"""Our clients against real WooCommerce 11.0.1 traffic: the requests they send must be the recorded ones,
and what they make of the answers must be right."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest

from ordersync.errors import AuthError, ClientRequestError, NotFoundError
from ordersync.platforms.woocommerce.auth import OAuth1Auth
from ordersync.platforms.woocommerce.client import LegacyV2Client, OrderFilters, WooCommerceClient
from ordersync.platforms.woocommerce.extract import fetch_details, iter_order_pages
from tests.woocommerce.conftest import HTTP, KEY, SECRET, replay

MakeClient = Callable[..., WooCommerceClient]
T0 = datetime(2026, 11, 22, 14, 15, 43, tzinfo=UTC)
UNFILTERED = OrderFilters(statuses=(), orderby=None, order=None)


async def _collect(client: WooCommerceClient, per_page: int, concurrency: int = 2) -> list[int]:
    ids: list[int] = []
    async with client:
        async for page in iter_order_pages(client, per_page=per_page, concurrency=concurrency):
            ids.extend(order["id"] for order in page.orders[: page.count])
    return ids


@pytest.mark.parametrize("per_page", [100, 25])
def test_v3_list_pages_give_every_order_once_in_date_order(make_client: MakeClient, per_page: int) -> None:
    with replay.use_cassette("v3_orders_list.yaml") as cassette:
        ids = asyncio.run(_collect(make_client(), per_page))
    assert len(ids) == 120
    assert len(set(ids)) == 120
    assert ids == sorted(ids)
    assert cassette.play_count == (2 if per_page == 100 else 5)


def test_v3_page_past_the_end_is_empty_with_totals_still_sent(make_client: MakeClient) -> None:
    async def run() -> None:
        async with make_client() as client:
            page = await client.orders_page(3, 100, OrderFilters())
        assert page.count == 0 and page.orders == []
        assert (page.total, page.total_pages) == (120, 2)

    with replay.use_cassette("v3_orders_list.yaml"):
        asyncio.run(run())


def test_v3_modified_after_is_sent_naive_gmt_and_finds_the_changed_orders(make_client: MakeClient) -> None:
    async def run() -> None:
        async with make_client() as client:
            by_modified = await client.orders_page(
                None, 100, OrderFilters(statuses=(), modified_after=T0, orderby="modified")
            )
            by_id = await client.orders_page(
                None, 100, OrderFilters(statuses=(), modified_after=T0, orderby="id")
            )
        assert [o["id"] for o in by_modified.orders] == [58, 38]
        assert [o["id"] for o in by_id.orders] == [38, 58]

    # The recording also holds the "...Z" request that silently returns []: the client never sends it,
    # and the replay would fail if it asked for anything else.
    with replay.use_cassette("v3_orders_modified_after.yaml"):
        asyncio.run(run())


def test_v3_refunds_and_notes_are_fetched_only_for_orders_that_need_them(make_client: MakeClient) -> None:
    async def run() -> None:
        async with make_client() as client:
            refunds = {oid: await client.refunds(oid) for oid in (32, 33, 35, 75, 76, 78, 118, 119, 121)}
            notes = {oid: await client.notes(oid) for oid in (27, 33, 35, 36, 48)}
        assert {oid: len(r) for oid, r in refunds.items()} == dict.fromkeys(refunds, 1)
        assert [r["id"] for r in refunds[33]] == [68]
        assert refunds[33][0]["line_items"][0]["total"] == "-39.00"
        assert {oid: len(n) for oid, n in notes.items()} == {27: 5, 33: 8, 35: 7, 36: 4, 48: 0}
        assert sum(n["customer_note"] for n in notes[27]) == 1

    with replay.use_cassette("v3_refunds_notes.yaml"):
        asyncio.run(run())


def test_fetch_details_asks_refunds_only_where_the_order_lists_one(make_client: MakeClient) -> None:
    """Orders 32 and 33 list a refund, 27 and 36 none: refunds are asked for 32 and 33 only (any other
    request would miss the recording), notes for the orders the recording holds."""
    import orjson

    from ordersync.platforms.woocommerce.client import ListPage

    orders = [
        {"id": 32, "refunds": [{"id": 67}]},
        {"id": 33, "refunds": [{"id": 68}]},
        {"id": 36, "refunds": []},
    ]
    page = ListPage(page=1, per_page=3, total=3, total_pages=1, count=3, body=b"", orders=orders, url="")

    async def run() -> dict[str, dict[str, list[dict[str, object]]]]:
        async with make_client() as client:
            refunds_only = await fetch_details(
                client, page, refunds=True, notes=False, limiter=asyncio.Semaphore(2)
            )
            notes_page = ListPage(
                page=1,
                per_page=2,
                total=2,
                total_pages=1,
                count=2,
                body=b"",
                orders=[{"id": 33}, {"id": 36}],
                url="",
            )
            with_notes = await fetch_details(
                client, notes_page, refunds=False, notes=True, limiter=asyncio.Semaphore(2)
            )
        assert refunds_only.attachments is not None and with_notes.attachments is not None
        return {**orjson.loads(refunds_only.attachments), "notes": orjson.loads(with_notes.attachments)}

    with replay.use_cassette("v3_refunds_notes.yaml"):
        got = asyncio.run(run())
    assert set(got) == {"32", "33", "notes"}
    assert [r["id"] for r in got["33"]["_refunds"]] == [68]
    assert len(got["notes"]["33"]["_notes"]) == 8 and len(got["notes"]["36"]["_notes"]) == 4


@pytest.mark.parametrize(
    ("per_page", "code"),
    [
        (1, "woocommerce_rest_cannot_view"),
        (2, "woocommerce_rest_authentication_error"),
        (3, "woocommerce_rest_cannot_view"),
    ],
)
def test_v3_refused_keys_give_a_clear_error_naming_the_shop_never_the_secret(
    make_client: MakeClient, per_page: int, code: str
) -> None:
    async def run() -> None:
        async with make_client() as client:
            await client.orders_page(None, per_page, UNFILTERED)

    with replay.use_cassette("v3_errors.yaml"), pytest.raises(AuthError) as caught:
        asyncio.run(run())
    message = str(caught.value)
    assert caught.value.code == code
    assert "woo-recorded" in message and "HTTP 401" in message
    assert SECRET not in message and KEY not in message


def test_v3_error_bodies_become_typed_errors_with_the_platform_code(make_client: MakeClient) -> None:
    async def run() -> list[Exception]:
        errors: list[Exception] = []
        async with make_client() as client:
            for call in (
                lambda: client.order(999999),
                lambda: client.order("abc"),
                lambda: client.orders_page(
                    None, None, OrderFilters(statuses=("bogus",), orderby=None, order=None)
                ),
                lambda: client.orders_page(None, 101, UNFILTERED),
            ):
                try:
                    await call()
                except Exception as exc:
                    errors.append(exc)
        return errors

    with replay.use_cassette("v3_errors.yaml"):
        missing, no_route, bad_status, too_big = asyncio.run(run())
    assert isinstance(missing, NotFoundError) and missing.code == "woocommerce_rest_shop_order_invalid_id"
    assert isinstance(no_route, NotFoundError) and no_route.code == "rest_no_route"
    assert isinstance(bad_status, ClientRequestError) and bad_status.code == "rest_invalid_param"
    assert isinstance(too_big, ClientRequestError) and too_big.code == "rest_invalid_param"
    assert too_big.status == 400


def test_extract_refuses_a_page_size_woocommerce_would_refuse(make_client: MakeClient) -> None:
    async def run() -> None:
        async for _ in iter_order_pages(make_client(), per_page=101, concurrency=1):
            pass

    with pytest.raises(ValueError, match="between 1 and 100"):
        asyncio.run(run())


def test_v3_oauth_over_plain_http_lists_every_order(make_client: MakeClient) -> None:
    with replay.use_cassette("v3_oauth_http.yaml"):
        ids = asyncio.run(_collect(make_client(HTTP), 100))
    assert len(ids) == 121 and len(set(ids)) == 121 and 165 in ids


def test_v3_oauth_json_post_carries_a_body_hash(make_client: MakeClient) -> None:
    """The recording matched only with ``oauth_body_hash`` in the query: oauthlib adds it for JSON."""

    async def run() -> dict[str, object]:
        async with make_client(HTTP) as client:
            result = await client.policy.request_json(
                client._http,
                "POST",
                "/wp-json/wc/v3/orders/49/notes",
                json={"note": "Private note added over plain HTTP with OAuth 1.0a.", "customer_note": False},
            )
            assert "oauth_body_hash=" in str(result.response.request.url)
            return result.data

    with replay.use_cassette("v3_oauth_http.yaml"):
        note = asyncio.run(run())
    assert note["customer_note"] is False


def test_v3_basic_auth_over_plain_http_is_refused(make_client: MakeClient) -> None:
    import httpx

    async def run() -> None:
        async with make_client(HTTP) as client:
            client._http.auth = httpx.BasicAuth(KEY, SECRET)
            await client.orders_page(None, 10, UNFILTERED)

    with replay.use_cassette("v3_oauth_http.yaml"), pytest.raises(AuthError) as caught:
        asyncio.run(run())
    assert caught.value.code == "woocommerce_rest_cannot_view"


def test_v2_lists_counts_statuses_and_details(make_client: MakeClient) -> None:
    async def run() -> None:
        async with make_client(api_version="v2", page_size=50) as client:
            assert isinstance(client, LegacyV2Client)
            ids: list[int] = []
            async for page in iter_order_pages(client, per_page=50, concurrency=2):
                assert page.total == 121 and page.total_pages == 3
                ids.extend(o["id"] for o in page.orders)
            # Default legacy order is date, newest first, with no tie-breaker: orders created in the same
            # second move between pages. The real shop listed 101 twice and 100 never; that is why the
            # connector asks the legacy API for filter[orderby]=ID.
            assert len(ids) == 121 and len(set(ids)) == 120
            assert ids.count(101) == 2 and 100 not in ids
            assert await client.count(OrderFilters(statuses=())) == 121
            assert (await client.statuses())["pending"] == "Pending payment"
            order = await client.order(33)
            assert order["id"] == 33 and order["completed_at"] == "1970-01-01T00:00:00Z"
            notes = await client.notes(33)
            assert len(notes) == 8 and all(isinstance(n["id"], str) for n in notes)
            refunds = await client.refunds(33)
            assert [r["id"] for r in refunds] == [68]
            changed = await client.orders_page(None, 100, OrderFilters(statuses=(), modified_after=T0))
            assert [o["id"] for o in changed.orders] == [165, 104, 82, 65, 61, 59, 58, 57, 39, 38]
            completed = await client.orders_page(None, None, OrderFilters(statuses=("completed",)))
            assert (completed.count, completed.total, completed.total_pages) == (10, 38, 4)
            with pytest.raises(NotFoundError) as missing:
                await client.order(999999)
            assert missing.value.code == "woocommerce_api_no_order_found"

    with replay.use_cassette("v2_legacy.yaml"):
        asyncio.run(run())


def test_v2_source_pages_by_id_because_date_order_is_unstable() -> None:
    from ordersync.config import HttpSettings
    from ordersync.http import HttpPolicy
    from ordersync.sync.sources import WooCommerceSource
    from tests.woocommerce.conftest import shop_config

    shop = shop_config(api_version="v2")
    source = WooCommerceSource(shop, HttpPolicy(HttpSettings(), shop=shop.name), None)
    params = source.client.list_params(1, 100, source.filters)
    assert params["filter[orderby]"] == "ID" and params["filter[order]"] == "ASC"
    asyncio.run(source.client.aclose())


def test_v2_updated_at_min_is_sent_as_utc_with_z_not_an_offset(make_client: MakeClient) -> None:
    """The legacy server decodes ``+`` to a space and then matches every order; the client must send
    the instant in UTC with ``Z`` even when given another zone."""
    from zoneinfo import ZoneInfo

    client = make_client(api_version="v2")
    berlin = T0.astimezone(ZoneInfo("Europe/Berlin"))
    params = client.list_params(None, 100, OrderFilters(statuses=(), modified_after=berlin))
    assert params["filter[updated_at_min]"] == "2026-11-22T14:15:43Z"
    asyncio.run(client.aclose())


def _plugin_signature(method: str, url: str, secret: str) -> str:
    """The signature the Legacy REST API plugin computes for ``url`` (class-wc-api-authentication.php,
    check_oauth_signature), rebuilt from its PHP, not through ordersync's helper:
    ``rawurlencode(untrailingslashit(get_woocommerce_api_url('')) . $server->path)``, the site's
    scheme, host and port with ``/wc-api/v3``; parameters rawurlencoded, ``%`` encoded again, sorted
    by key, joined with ``%3D`` and ``%26``; HMAC over the bare secret."""
    parts = urlsplit(url)
    route = parts.path.split("/wc-api/", 1)[1].split("/", 1)[1]
    api_url = f"{parts.scheme}://{parts.netloc}/wc-api/v3/{route}"
    params = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "oauth_signature"}

    def encode(text: str) -> str:
        return quote(text, safe="~").replace("%", "%25")

    pairs = sorted((encode(k), encode(v)) for k, v in params.items())
    query = "%26".join(f"{k}%3D{v}" for k, v in pairs)
    string_to_sign = f"{method}&{quote(api_url, safe='~')}&{query}"
    return base64.b64encode(
        hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).digest()
    ).decode()


def test_v2_oauth_signs_what_the_legacy_plugin_checks_on_a_port_other_than_80(
    make_client: MakeClient,
) -> None:
    """The recorded shop listens on 127.0.0.1:8080: the plugin's base string names that port, and a
    signature over the bare host (what ordersync sent before) does not match it."""
    seen: list[str] = []

    def capture(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"orders": []}, headers={"X-WC-Total": "0", "X-WC-TotalPages": "0"})

    async def run() -> None:
        async with make_client(HTTP, api_version="v2") as client:
            client._http._transport = httpx.MockTransport(capture)
            await client.orders_page(2, 5, UNFILTERED)

    asyncio.run(run())
    (url,) = seen
    assert urlsplit(url).port == 8080
    given = dict(parse_qsl(urlsplit(url).query))["oauth_signature"]
    assert given == _plugin_signature("GET", url, SECRET)
    portless = url.replace("127.0.0.1:8080", "127.0.0.1")
    assert _plugin_signature("GET", portless, SECRET) != given


def test_v2_oauth_needs_the_legacy_signature(make_client: MakeClient) -> None:
    """The recording redacts signatures, so this checks the request shape and the answers; the test
    above recomputes the signature the plugin's way."""

    async def run() -> None:
        async with make_client(HTTP, api_version="v2") as client:
            page = await client.orders_page(2, 5, UNFILTERED)
            assert page.count == 5 and page.total_pages == 25
            client._http.auth = OAuth1Auth(KEY, SECRET, legacy=False)  # a standard RFC 5849 signature
            with pytest.raises(AuthError) as refused:
                await client.orders_page(1, 5, UNFILTERED)
            assert refused.value.code == "woocommerce_api_authentication_error"

    with replay.use_cassette("v2_legacy.yaml"):
        asyncio.run(run())
