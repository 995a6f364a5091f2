"""``mirror.personal_data``: with ``hash`` or ``drop`` no seeded e-mail address, phone number, IP
address or raw payload reaches the DuckDB file, while ``keep`` mirrors them (the control)."""

from __future__ import annotations

import stat
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from ordersync.cli import app

runner = CliRunner()


def _backfill(tmp_path: Path, mode: str) -> Path:
    mirror = tmp_path / mode / "m.duckdb"
    mirror.parent.mkdir()
    config = mirror.parent / "sync.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "sandbox": {"enabled": True, "orders": 150, "seed": 5},
                "workers": 0,
                "mirror": {"path": str(mirror), "personal_data": mode},
                "state": {"url": f"sqlite:///{mirror.parent / 'state.db'}", "auto_upgrade": True},
                "shops": [
                    {
                        "name": "wc",
                        "platform": "webcommander",
                        "base_url": "http://127.0.0.1:9",
                        "uuid": "F8A3-A88E-C6EF-B1CB",
                        "access_token": "11b4ec017714ef095b8e115545467fcb",
                        "timezone": "Australia/Melbourne",
                        "currency": "AUD",
                    },
                    {
                        "name": "woo",
                        "platform": "woocommerce",
                        "base_url": "http://127.0.0.1:9",
                        "consumer_key": "ck_sandbox_read_write_0000000000000000000000",
                        "consumer_secret": "cs_sandbox_read_write_0000000000000000000000",
                        "timezone": "Europe/Berlin",
                        "currency": "EUR",
                    },
                ],
            }
        )
    )
    result = runner.invoke(app, ["backfill", "-c", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    return mirror


def _personal(mirror: Path) -> tuple[set[str], set[str], int]:
    with duckdb.connect(str(mirror), read_only=True) as con:
        emails = {
            r[0]
            for r in con.execute("SELECT customer_email FROM orders WHERE customer_email <> ''").fetchall()
        }
        emails |= {
            r[0] for r in con.execute("SELECT email FROM order_addresses WHERE email <> ''").fetchall()
        }
        phones = {r[0] for r in con.execute("SELECT phone FROM order_addresses WHERE phone <> ''").fetchall()}
        payloads = con.execute("SELECT count(payload) FROM raw_orders").fetchone()[0]
    return emails, phones, payloads


def _text_in_file(mirror: Path) -> str:
    """Every text value in every table and column of the file, as one string to search."""
    parts = []
    with duckdb.connect(str(mirror), read_only=True) as con:
        columns = con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal "
            "AND data_type = 'VARCHAR' AND table_name IN (SELECT table_name FROM duckdb_tables())"
        ).fetchall()
        for table, column in columns:
            parts.extend(str(v[0]) for v in con.execute(f'SELECT "{column}" FROM {table}').fetchall() if v[0])
    return "\n".join(parts)


@pytest.mark.parametrize("mode", ["hash", "drop"])
def test_no_seeded_personal_data_reaches_the_file(tmp_path: Path, mode: str) -> None:
    kept = _backfill(tmp_path, "keep")
    emails, phones, payloads = _personal(kept)
    assert len(emails) > 50 and len(phones) > 50 and payloads > 250  # the control: keep mirrors them
    assert any(e in _text_in_file(kept) for e in emails)

    scrubbed = _backfill(tmp_path, mode)
    text = _text_in_file(scrubbed)
    assert not [e for e in emails if e in text], "an e-mail address reached the file"
    assert not [p for p in phones if p in text], "a phone number reached the file"
    raw = scrubbed.read_bytes() + (
        Path(f"{scrubbed}.wal").read_bytes() if Path(f"{scrubbed}.wal").exists() else b""
    )
    assert not [e for e in emails if e.encode() in raw]
    with duckdb.connect(str(scrubbed), read_only=True) as con:
        ips = con.execute("SELECT count(ip_address) FROM orders").fetchone()[0]
        payloads_left = con.execute("SELECT count(payload) FROM raw_orders").fetchone()[0]
        orders, hashed = con.execute(
            "SELECT count(*), count(DISTINCT customer_email) FROM orders WHERE customer_email IS NOT NULL"
        ).fetchone()
    assert ips == 0 and payloads_left == 0
    salt = scrubbed.with_name("m.duckdb.salt")
    if mode == "hash":
        # Hashed, not lost: one customer keeps one hash, so distinct customers can still be counted.
        assert orders > 250 and 0 < hashed < orders
        assert salt.exists() and stat.S_IMODE(salt.stat().st_mode) == 0o600
        assert salt.read_text().strip().encode() not in raw
    else:
        assert orders == 0 and not salt.exists()


def test_hashes_are_stable_across_runs(tmp_path: Path) -> None:
    mirror = _backfill(tmp_path, "hash")
    with duckdb.connect(str(mirror), read_only=True) as con:
        before = dict(con.execute("SELECT order_id, customer_email FROM orders").fetchall())
    again = runner.invoke(
        app, ["backfill", "-c", str(mirror.parent / "sync.yaml"), "--no-progress", "--restart"]
    )
    assert again.exit_code == 0, again.output
    with duckdb.connect(str(mirror), read_only=True) as con:
        after = dict(con.execute("SELECT order_id, customer_email FROM orders").fetchall())
    assert after == before and all(v is None or v.startswith("h:") for v in after.values())


def test_a_quarantined_payload_is_left_out_too() -> None:
    from datetime import UTC, datetime

    from ordersync.mirror.batch import QuarantinedRecord, quarantine_table
    from ordersync.mirror.privacy import scrub

    record = QuarantinedRecord(
        "woocommerce", "woo", "7", "billing.email", "too long", b'{"email": "a@b.c"}', "h", "u"
    )
    table = quarantine_table([record], datetime.now(UTC))
    for mode in ("hash", "drop"):
        scrubbed = scrub({"quarantine": table}, mode, b"salt")["quarantine"]
        assert scrubbed.column("payload").to_pylist() == [None]
        assert scrubbed.column("reason").to_pylist() == ["too long"]  # what went wrong stays readable
    assert scrub({"quarantine": table}, "keep", None)["quarantine"] is table
