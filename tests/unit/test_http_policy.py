"""The one HTTP policy: what happens on each kind of failure, tested without sockets."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ordersync.config import HttpSettings
from ordersync.errors import (
    AuthError,
    BadResponseError,
    ClientRequestError,
    NotFoundError,
    ServerError,
    TransportError,
)
from ordersync.http import USER_AGENT, HttpPolicy, build_client, parse_retry_after, redact_url


class Recorder:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def run(policy: HttpPolicy, handler, url: str = "/x"):
    async def go():
        async with build_client("http://shop.test", policy, transport=httpx.MockTransport(handler)) as client:
            return await policy.request_json(client, "GET", url)

    return asyncio.run(go())


def policy(sleeps: Recorder, retries: int = 3) -> HttpPolicy:
    settings = HttpSettings(max_retries=retries, backoff_base=0.5, backoff_max=30, max_retry_after=120)
    return HttpPolicy(settings, shop="demo", sleep=sleeps, jitter=lambda: 1.0)


def script(*responses: httpx.Response | Exception):
    queue = list(responses)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    handler.seen = seen  # type: ignore[attr-defined]
    return handler


def test_retries_5xx_then_succeeds_with_exponential_backoff() -> None:
    sleeps = Recorder()
    handler = script(httpx.Response(503), httpx.Response(502), httpx.Response(200, json={"ok": 1}))
    result = run(policy(sleeps), handler)
    assert result.data == {"ok": 1}
    assert sleeps.sleeps == [0.5, 1.0]  # base * 2^(n-1) with the jitter pinned at its maximum
    assert handler.seen[0].headers["user-agent"] == USER_AGENT


def test_honours_retry_after_on_429() -> None:
    sleeps = Recorder()
    handler = script(httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json=[]))
    assert run(policy(sleeps), handler).data == []
    assert sleeps.sleeps == [7.0]


def test_gives_up_after_max_retries_naming_url_and_status() -> None:
    sleeps = Recorder()
    handler = script(*[httpx.Response(500, json={"message": "boom"})] * 3)
    with pytest.raises(ServerError) as info:
        run(policy(sleeps, retries=2), handler, "/orders?max=10&offset=20")
    assert info.value.status == 500
    assert "http://shop.test/orders?max=10&offset=20" in str(info.value)
    assert "boom" in str(info.value)
    assert len(handler.seen) == 3


def test_html_error_page_and_broken_json_are_retried_then_reported() -> None:
    sleeps = Recorder()
    html = httpx.Response(
        200, text="<html><body>Bad gateway</body></html>", headers={"content-type": "text/html"}
    )
    broken = httpx.Response(200, content=b'{"orders": [', headers={"content-type": "application/json"})
    handler = script(html, broken, broken)
    with pytest.raises(BadResponseError) as info:
        run(policy(sleeps, retries=2), handler)
    assert "not valid JSON" in str(info.value) and "HTTP 200" in str(info.value)
    assert len(handler.seen) == 3


def test_empty_bodies_from_a_host_are_retried_then_reported_as_empty() -> None:
    sleeps = Recorder()
    empty_503 = httpx.Response(503, content=b"")
    empty_200 = httpx.Response(200, content=b"", headers={"content-type": "application/json"})
    handler = script(empty_503, empty_200, empty_200)
    with pytest.raises(BadResponseError) as info:
        run(policy(sleeps, retries=2), handler)
    assert "empty body" in str(info.value) and "HTTP 200" in str(info.value)
    assert len(handler.seen) == 3 and len(sleeps.sleeps) == 2
    recovered = script(httpx.Response(503, content=b""), httpx.Response(200, json=[1]))
    assert run(policy(Recorder()), recovered).data == [1]


def test_waf_html_403_is_retried_but_json_401_is_fatal_at_once() -> None:
    sleeps = Recorder()
    waf = httpx.Response(
        403, text="<!DOCTYPE html><title>Access denied</title>", headers={"content-type": "text/html"}
    )
    handler = script(waf, httpx.Response(200, json={"a": 1}))
    assert run(policy(sleeps), handler).data == {"a": 1}

    handler = script(httpx.Response(401, json={"status": "error", "message": "Invalid uuid or accessToken"}))
    with pytest.raises(AuthError) as info:
        run(policy(Recorder()), handler)
    assert "Invalid uuid or accessToken" in str(info.value) and "shop 'demo'" in str(info.value)
    assert len(handler.seen) == 1


def test_404_and_400_are_not_retried() -> None:
    with pytest.raises(NotFoundError):
        run(policy(Recorder()), script(httpx.Response(404, json={"message": "Order not found"})))
    with pytest.raises(ClientRequestError):
        run(policy(Recorder()), script(httpx.Response(400, json={"message": "bad max"})))


def test_timeouts_and_connection_errors_are_retried() -> None:
    sleeps = Recorder()
    handler = script(httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.Response(200, json={}))
    assert run(policy(sleeps), handler).data == {}
    handler = script(*[httpx.ReadTimeout("slow")] * 2)
    with pytest.raises(TransportError):
        run(policy(Recorder(), retries=1), handler)


def test_retry_after_is_capped_and_parses_http_dates() -> None:
    p = policy(Recorder())
    assert p.backoff(1, 10_000) == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("soon") is None


def test_redact_url_hides_keys_and_userinfo() -> None:
    url = "https://user:pw@shop.test/wp-json/wc/v3/orders?consumer_key=ck_1&consumer_secret=cs_2&page=2&oauth_signature=abc"
    shown = redact_url(url)
    assert "ck_1" not in shown and "cs_2" not in shown and "abc" not in shown and "pw" not in shown
    assert "page=2" in shown and shown.startswith("https://shop.test/")


class Clock:
    """Virtual time: sleeping advances it, so an outage of minutes is tested in milliseconds."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def outage(clock: Clock, seconds: float, refused_for: float = 30.0):
    """A shop that refuses connections, then answers nginx 502 pages, for ``seconds``; then works."""

    def handler(request: httpx.Request) -> httpx.Response:
        if clock.now < min(refused_for, seconds):
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if clock.now < seconds:
            return httpx.Response(
                502, text="<html>502 Bad Gateway</html>", headers={"content-type": "text/html"}
            )
        return httpx.Response(200, json={"orders": []})

    return handler


def test_default_policy_rides_out_a_two_minute_outage_with_capped_pauses() -> None:
    clock = Clock()
    policy = HttpPolicy(HttpSettings(), shop="demo", sleep=clock.sleep, clock=clock, jitter=lambda: 1.0)
    policy.answered = True  # the shop answered earlier in the run, then went down
    assert run(policy, outage(clock, 120)).data == {"orders": []}
    assert clock.now >= 120
    assert max(clock.sleeps) == HttpSettings().backoff_max  # pauses grow, then stay at the cap
    assert clock.sleeps[:3] == [0.5, 1.0, 2.0]
    assert policy.retries == len(clock.sleeps)


def test_an_outage_longer_than_the_budget_fails_within_it_saying_how_long() -> None:
    clock = Clock()
    settings = HttpSettings(retry_for=300)
    policy = HttpPolicy(settings, shop="demo", sleep=clock.sleep, clock=clock, jitter=lambda: 1.0)
    policy.answered = True
    with pytest.raises(BadResponseError) as info:
        run(policy, outage(clock, 10_000))
    assert clock.now <= 300  # never sleeps past the budget
    assert clock.now > 300 - settings.backoff_max  # but uses it
    assert f"still failing after {len(clock.sleeps) + 1} tries over {clock.now:.0f} s" in str(info.value)


def test_a_retry_after_longer_than_the_budget_left_ends_the_tries() -> None:
    clock = Clock()
    policy = HttpPolicy(HttpSettings(retry_for=60), shop="demo", sleep=clock.sleep, clock=clock)
    handler = script(*[httpx.Response(429, headers={"Retry-After": "100"})] * 3)
    with pytest.raises(ServerError):
        run(policy, handler)
    assert clock.sleeps == [] and len(handler.seen) == 1


def test_max_retries_still_caps_tries_when_set() -> None:
    clock = Clock()
    policy = HttpPolicy(HttpSettings(max_retries=2), shop="demo", sleep=clock.sleep, clock=clock)
    handler = script(*[httpx.Response(503)] * 3)
    with pytest.raises(ServerError):
        run(policy, handler)
    assert len(handler.seen) == 3


def test_a_shop_that_never_answered_fails_within_the_first_contact_budget() -> None:
    """A wrong port or host is not waited on for five minutes: until the shop has answered once in the
    run, refused connections get ``first_contact_for``; a 502 is an answer, and gets the whole budget."""
    clock = Clock()
    policy = HttpPolicy(HttpSettings(), shop="demo", sleep=clock.sleep, clock=clock, jitter=lambda: 1.0)
    with pytest.raises(TransportError, match=r"(?i)connection refused"):
        run(policy, outage(clock, 10_000, refused_for=10_000))
    assert 15 < clock.now <= HttpSettings().first_contact_for
    gateway = Clock()
    policy = HttpPolicy(HttpSettings(), shop="demo", sleep=gateway.sleep, clock=gateway, jitter=lambda: 1.0)
    assert run(policy, outage(gateway, 120, refused_for=0)).data == {"orders": []}
    assert gateway.now >= 120


def test_a_certificate_that_does_not_verify_is_permanent() -> None:
    import ssl

    def handler(request: httpx.Request) -> httpx.Response:
        cause = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
        raise httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]", request=request) from cause

    with pytest.raises(TransportError) as info:
        run(policy(Recorder()), handler)
    assert info.value.permanent
