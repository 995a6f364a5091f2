"""Days in the mirror are the shop's or UTC's, never the analyst session's; sales count paid orders on
the day they were placed and refunds on the day they were made; the shops dimension has no secrets."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from ordersync.config import parse_settings
from ordersync.mirror.store import Mirror
from ordersync.models import Refund
from ordersync.sync.sources import shop_row
from tests.unit.test_mirror import batch_of, order

LATE_EVENING_UTC = datetime(2023, 12, 31, 14, 30, tzinfo=UTC)  # 2024-01-01 01:30 in Melbourne


def _mirror(tmp_path: Path) -> Mirror:
    mirror = Mirror(tmp_path / "m.duckdb")
    for shop, zone in (("mel", "Australia/Melbourne"), ("ber", "Europe/Berlin")):
        mirror.record_shop(
            {
                "shop": shop,
                "platform": "webcommander",
                "api": "external-app",
                "timezone": zone,
                "currency": "AUD",
                "base_url": f"https://{shop}.example.com",
            }
        )
    refund = Refund(
        external_id="r", amount=Decimal("5.00"), created_at=datetime(2024, 1, 3, 9, 0, tzinfo=UTC)
    )
    placed = {"created_at": LATE_EVENING_UTC, "payment_status": "paid", "refunds": [refund]}
    mirror.write(
        batch_of(
            order("1", shop="mel").model_copy(update=placed),
            order("2", shop="ber").model_copy(update=placed),
            order("3", shop="mel").model_copy(
                update={"created_at": LATE_EVENING_UTC, "refunds": []}
            ),  # unpaid
        )
    )
    return mirror


@pytest.mark.parametrize("session_zone", ["UTC", "Australia/Melbourne", "America/Los_Angeles"])
def test_the_days_do_not_depend_on_the_session_time_zone(tmp_path: Path, session_zone: str) -> None:
    mirror = _mirror(tmp_path)
    with duckdb.connect(str(mirror.path), read_only=True) as con:
        con.execute(f"SET TimeZone = '{session_zone}'")
        local = con.execute(
            "SELECT shop, CAST(day_local AS VARCHAR), orders, gross, refunded, net "
            "FROM v_daily_sales ORDER BY shop, day_local"
        ).fetchall()
        utc = con.execute(
            "SELECT shop, CAST(day_utc AS VARCHAR), orders, refunded "
            "FROM v_daily_sales_utc ORDER BY shop, day_utc"
        ).fetchall()
        days = con.execute("SELECT order_id, day_local, day_utc FROM v_orders ORDER BY order_id").fetchall()
    zero, twenty, five = Decimal("0.0000"), Decimal("20.0000"), Decimal("5.0000")
    assert local == [
        # Berlin: 15:30 on the 31st; Melbourne: 01:30 on the 1st. The refund lands on its own day.
        ("ber", "2023-12-31", 1, twenty, zero, twenty),
        ("ber", "2024-01-03", 0, zero, five, -five),
        ("mel", "2024-01-01", 1, twenty, zero, twenty),
        ("mel", "2024-01-03", 0, zero, five, -five),
    ]
    assert utc == [
        ("ber", "2023-12-31", 1, zero),
        ("ber", "2024-01-03", 0, five),
        ("mel", "2023-12-31", 1, zero),
        ("mel", "2024-01-03", 0, five),
    ]
    assert [(o, str(d), str(u)) for o, d, u in days] == [
        ("1", "2024-01-01", "2023-12-31"),
        ("2", "2023-12-31", "2023-12-31"),
        ("3", "2024-01-01", "2023-12-31"),
    ]


def test_the_views_say_what_they_count(tmp_path: Path) -> None:
    mirror = _mirror(tmp_path)
    with duckdb.connect(str(mirror.path), read_only=True) as con:
        comments = dict(
            con.execute(
                "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'v_daily_sales'"
            ).fetchall()
        )
        view = con.execute("SELECT comment FROM duckdb_views() WHERE view_name = 'v_daily_sales'").fetchone()
        shops = con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'shops'").fetchone()
    assert (
        "paid orders" in comments["orders"]
        and "cancelled and failed orders are not sales" in comments["orders"]
    )
    assert "time zone" in comments["day_local"] and "refunds made that day" in comments["refunded"]
    assert view is not None and "any session TimeZone" in view[0]
    assert shops is not None and shops[0]


def test_the_shops_row_carries_no_credentials() -> None:
    settings = parse_settings(
        {
            "shops": [
                {
                    "name": "woo",
                    "platform": "woocommerce",
                    "base_url": "https://user:s3cret@shop.example.com/?consumer_key=ck_x",
                    "consumer_key": "ck_x",
                    "consumer_secret": "cs_y",
                    "timezone": "Europe/Berlin",
                    "currency": "EUR",
                    "api_version": "v2",
                }
            ]
        }
    )
    row = shop_row(settings.shops[0])
    assert row == {
        "shop": "woo",
        "platform": "woocommerce",
        "api": "wc-api/v2",
        "timezone": "Europe/Berlin",
        "currency": "EUR",
        "base_url": "https://shop.example.com",
    }
