"""A bad config fails before any request, naming the key and the problem, never echoing a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from ordersync.config import load_settings, parse_settings
from ordersync.errors import ConfigError

SHOP = {
    "name": "wc1",
    "platform": "webcommander",
    "base_url": "http://127.0.0.1:9",
    "uuid": "U-1",
    "access_token": "tok-secret-123",
    "timezone": "Australia/Melbourne",
    "currency": "AUD",
}


def test_embedded_default_and_example_file_are_valid() -> None:
    default = load_settings(None)
    assert default.sandbox.enabled and default.shops[0].platform == "webcommander"
    example = load_settings(Path(__file__).parents[2] / "sync.example.yaml")
    assert example.shops[0].zone.key == "Australia/Melbourne"
    assert example.shops[0].access_token.get_secret_value() == "11b4ec017714ef095b8e115545467fcb"


@pytest.mark.parametrize(
    ("patch", "where", "problem"),
    [
        ({"timezone": "Mars/Olympus"}, "shops.0.webcommander.timezone", "unknown timezone"),
        ({"base_url": "ftp://x"}, "shops.0.webcommander.base_url", "http"),
        ({"page_size": 0}, "shops.0.webcommander.page_size", "greater than or equal to 1"),
        ({"currency": "euro"}, "shops.0.webcommander.currency", "pattern"),
        ({"pagesize": 10}, "shops.0.webcommander.pagesize", "unknown key; did you mean 'page_size'?"),
        ({"platform": "magento"}, "shops.0", "webcommander"),
    ],
)
def test_bad_values_name_key_and_problem(patch: dict, where: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"shops": [{**SHOP, **patch}]}, "my.yaml")
    message = str(info.value)
    assert "my.yaml" in message and where in message and problem in message
    assert "tok-secret-123" not in message


def test_missing_token_and_duplicate_names() -> None:
    shop = {k: v for k, v in SHOP.items() if k != "access_token"}
    with pytest.raises(ConfigError, match=r"shops\.0\.webcommander\.access_token: Field required"):
        parse_settings({"shops": [shop]})
    with pytest.raises(ConfigError, match="used twice"):
        parse_settings({"shops": [SHOP, SHOP]})


def test_env_references(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WC_TOKEN", "from-env")
    settings = parse_settings({"shops": [{**SHOP, "access_token": "${WC_TOKEN}"}]})
    assert settings.shops[0].access_token.get_secret_value() == "from-env"
    assert "from-env" not in repr(settings)
    with pytest.raises(ConfigError, match=r"shops\.0\.uuid: environment variable NOPE_UNSET is not set"):
        parse_settings({"shops": [{**SHOP, "uuid": "${NOPE_UNSET}"}]})
    assert (
        parse_settings({"shops": [{**SHOP, "uuid": "${NOPE_UNSET:-dflt}"}]}).shops[0].uuid.get_secret_value()
        == "dflt"
    )


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_settings(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("shops: [\n  - name: x\n  bad: : :\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_settings(bad)


WOO = {
    "name": "woo",
    "platform": "woocommerce",
    "base_url": "https://shop.example.com",
    "consumer_key": "ck_1",
    "consumer_secret": "cs_secret_1",
}


@pytest.mark.parametrize(
    ("sync", "problem"),
    [
        ({"routes": [{"from": "woo", "to": "wc9", "changes": ["status"]}]}, "no shop named 'wc9'"),
        ({"routes": [{"from": "woo", "to": "woo", "changes": ["status"]}]}, "the same shop"),
        ({"routes": [{"from": "woo", "to": "wc1", "changes": ["gossip"]}]}, "changes"),
        ({"routes": [{"from": "woo", "to": "wc1", "changes": []}]}, "at least 1"),
        (
            {
                "routes": [
                    {"from": "woo", "to": "wc1", "changes": ["orders"], "replicate_since": "2026-01-01T00:00"}
                ]
            },
            "timezone",
        ),
        ({"conflicts": {"status": "magento"}}, "neither 'latest' nor a shop name"),
    ],
)
def test_write_back_routes_are_checked_against_the_shops(sync: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"shops": [SHOP, WOO], "sync": sync})
    assert problem in str(caught.value)
    assert "cs_secret_1" not in str(caught.value) and "tok-secret-123" not in str(caught.value)


def test_a_route_reads_from_and_to() -> None:
    route = {"from": "woo", "to": "wc1", "changes": ["orders", "refunds"], "products": {"SKU-1": "495"}}
    settings = parse_settings(
        {"shops": [SHOP, WOO], "sync": {"routes": [route], "conflicts": {"status": "wc1"}}}
    )
    (parsed,) = settings.sync.routes
    assert (parsed.source, parsed.target, parsed.products) == ("woo", "wc1", {"SKU-1": "495"})
    assert settings.sync.policy("status") == "wc1" and settings.sync.policy("payment_status") == "latest"
