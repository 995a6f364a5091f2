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
        ({"pagesize": 10}, "shops.0.webcommander.pagesize", "Extra inputs"),
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
    with pytest.raises(ConfigError, match=r"shops\[0\]\.uuid: environment variable NOPE_UNSET is not set"):
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
