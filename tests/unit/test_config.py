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


@pytest.mark.parametrize(
    ("mirror", "problem"),
    [
        ({"data_path": "files/"}, "settings of a DuckLake mirror: add kind: ducklake"),
        ({"kind": "ducklake", "catalog": "mysql:x"}, "a PostgreSQL catalog 'postgres:<libpq string>'"),
        ({"kind": "ducklake", "keep_snapshots": "forever"}, "keep_snapshots"),
        ({"kind": "ducklake", "maintenance": {"cron": "every night"}}, "not a crontab line"),
    ],
)
def test_lake_settings_are_checked(mirror: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match="mirror") as caught:
        parse_settings({"mirror": mirror, "shops": [SHOP]})
    assert problem in str(caught.value)


def test_a_lakes_paths_are_read_from_the_config_files_folder_and_its_catalog_stays_secret(
    tmp_path: Path,
) -> None:
    import yaml

    from ordersync.mirror.lake import LakeMirror, without_password

    catalog = "postgres:host=db dbname=lake user=ordersync password=s3cret-lake"
    config = tmp_path / "sync.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "mirror": {
                    "kind": "ducklake",
                    "path": "lake.sqlite",
                    "data_path": "files",
                    "catalog": catalog,
                },
                "shops": [SHOP],
            }
        )
    )
    settings = load_settings(config)
    assert settings.mirror.path == tmp_path / "lake.sqlite"
    assert settings.mirror.lake_data_path == f"{tmp_path / 'files'}/"
    assert "s3cret-lake" not in repr(settings.mirror) and "s3cret-lake" not in str(settings.mirror)
    lake = settings.mirror.open()
    assert isinstance(lake, LakeMirror) and "s3cret" not in lake.shown
    assert "s3cret" not in without_password(catalog) and "dbname=lake" in without_password(catalog)
    # Unset, the data sits beside the SQLite catalog.
    plain = parse_settings(
        {"mirror": {"kind": "ducklake", "path": str(tmp_path / "l.sqlite")}, "shops": [SHOP]}
    )
    assert plain.mirror.lake_data_path == f"{tmp_path / 'l.sqlite.files'}/"
