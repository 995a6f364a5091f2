"""``mirror.personal_data``: what of a customer's personal data reaches the DuckDB file.

``keep`` mirrors everything. ``hash`` replaces e-mail addresses and phone numbers with a keyed hash
(HMAC-SHA256 with a salt made once per mirror and kept beside it, never in it), so an analyst can
still count distinct customers and join on them, and drops IP addresses and the raw payloads.
``drop`` drops those too. It is applied to the Arrow tables of a batch just before they are written,
so nothing else reaches the file; the state store keeps quarantined payloads, which a fix needs to
map again.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import pyarrow as pa

MODES = ("keep", "hash", "drop")

# table -> column -> what "hash" does with it ("drop" drops every column listed).
PERSONAL: dict[str, dict[str, str]] = {
    "orders": {"customer_email": "hash", "ip_address": "drop"},
    "order_addresses": {"email": "hash", "phone": "hash", "mobile": "hash", "fax": "hash"},
    "raw_orders": {"payload": "drop", "details": "drop"},
    "quarantine": {"payload": "drop"},
}


def salt_for(mirror_path: Path) -> bytes:
    """The mirror's salt, made on first use in ``<mirror>.salt`` (mode 0600): the same address hashes
    alike across runs of one mirror, and the file itself never holds what would undo the hash."""
    path = mirror_path.with_name(mirror_path.name + ".salt")
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    salt = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(salt + "\n")
    return bytes.fromhex(salt)


def _hashed(values: pa.Array, salt: bytes) -> pa.Array:
    """Each value normalised (trimmed, lower case) and keyed-hashed; NULL and empty stay as they are."""
    out = []
    for value in values.to_pylist():
        if not value:
            out.append(value)
            continue
        digest = hmac.new(salt, value.strip().lower().encode(), hashlib.sha256).hexdigest()
        out.append("h:" + digest[:32])
    return pa.array(out, type=pa.string())


def scrub(tables: dict[str, pa.Table], mode: str, salt: bytes | None) -> dict[str, pa.Table]:
    """The tables with personal columns hashed or dropped (NULL) as ``mode`` says."""
    if mode == "keep":
        return tables
    result = dict(tables)
    for name, columns in PERSONAL.items():
        table = result.get(name)
        if table is None or not table.num_rows:
            continue
        for column, action in columns.items():
            if column not in table.column_names:
                continue
            at = table.column_names.index(column)
            field = table.schema.field(at)
            if mode == "hash" and action == "hash":
                assert salt is not None
                replacement = _hashed(table.column(at).combine_chunks(), salt)
            else:
                replacement = pa.nulls(table.num_rows, type=field.type)
            table = table.set_column(at, field, replacement)
        result[name] = table
    return result
