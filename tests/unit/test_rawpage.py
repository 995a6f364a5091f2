"""Page heads read from the bytes agree with a full parse, for every shape a shop may send."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from ordersync.rawpage import ShapeError, heads_of, read_heads, split_records

DATA = Path(__file__).parents[1] / "data" / "webcommander"


def _slow(body: bytes, key: str | None) -> tuple[dict, tuple, tuple]:
    data = orjson.loads(body)
    records = data[key] if key else data
    heads = heads_of(records, {k: v for k, v in data.items() if k != key} if key else {})
    return heads.fields, heads.ids, heads.refunded


def _fast(body: bytes, key: str | None) -> tuple[dict, tuple, tuple]:
    heads = read_heads(body, key)
    return heads.fields, heads.ids, heads.refunded


def test_the_documents_list_example_reads_as_a_full_parse() -> None:
    body = (DATA / "external_orders_list.json").read_bytes()
    fields, ids, _ = _fast(body, "orders")
    assert (fields, ids) == _slow(body, "orders")[:2]
    assert fields["status"] == "success" and len(ids) == len(json.loads(body)["orders"]) > 0


@pytest.mark.parametrize(
    "records",
    [
        [{"id": 1}, {"id": "2"}, {"id": 3.0}, {"other": 1}, {"id": None}],
        [{"id": 7, "refunds": [{"id": 9, "total": "-1.00"}]}, {"id": 8, "refunds": []}],
        [None, {"id": 1}, "text", 12],  # records that are not objects: the slow path, same answers
        [{"id": True}, {"id": {"nested": 1}}],
        [{"id": 5, "refunds": None}, {"id": 6, "refunds": {"odd": 1}}],
        [],
    ],
)
@pytest.mark.parametrize("key", [None, "orders"])
def test_odd_records_read_as_a_full_parse(records: list, key: str | None) -> None:
    body = orjson.dumps({"orders": records, "total": len(records), "status": "success"} if key else records)
    assert _fast(body, key) == _slow(body, key)


def test_not_json_is_a_value_error_and_a_missing_list_a_shape_error() -> None:
    with pytest.raises(ValueError):
        read_heads(b'{"orders": [{"id": 1}, ', "orders")
    with pytest.raises(ShapeError):
        read_heads(b'{"status": "error", "message": "nope"}', "orders")
    with pytest.raises(ShapeError):
        read_heads(b'{"orders": {"id": 1}}', "orders")
    with pytest.raises(ShapeError):
        read_heads(b'{"id": 1}', None)
    assert not isinstance(ShapeError("x"), ValueError)  # the HTTP policy retries ValueErrors


def test_records_are_the_shops_own_bytes() -> None:
    """Split, not re-serialised: whitespace and escapes stay as the shop wrote them (PHP's "\\/")."""
    body = b'{"orders": [ {"id": 1, "url": "a\\/b"} ,\n  {"id":2,"name":"\\u00e9"} ], "total": 2}'
    records = split_records(body, "orders")
    assert [bytes(r) for r in records] == [b'{"id": 1, "url": "a\\/b"}', b'{"id":2,"name":"\\u00e9"}']
    assert [orjson.loads(bytes(r)) for r in records] == orjson.loads(body)["orders"]
