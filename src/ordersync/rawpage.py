"""A page of orders as the shop sent it: what paging needs is read from the bytes, the rest is left.

The main process must know a page's ids (a scan counts and checks them), its ``total`` and, on
WooCommerce, which orders list a refund; it must not build Python objects for kilobytes of order it
only hands on. msgspec reads those few fields with typed decoders that skip everything else, and
splits a page into each order's own bytes (``msgspec.Raw``) for the worker that maps it. A page whose
shape the fast decoder does not expect (a record that is not an object, an id that is a boolean) is
read the slow way, with the same answers, so an odd record is still quarantined by the mapper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson


class _Head(msgspec.Struct):
    id: int | str | float | None = None
    refunds: list[msgspec.Raw] | None = None


_heads = msgspec.json.Decoder(list[_Head])
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_envelope = msgspec.json.Decoder(dict[str, msgspec.Raw])
_any = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class PageHeads:
    """What paging reads of a page: the envelope's other fields and, per order, its id and refund mark."""

    fields: dict[str, Any]
    """The envelope's fields other than the order list (WebCommander's ``status`` and ``total``)."""
    ids: tuple[str | None, ...]
    """Each record's id as text; None for a record without one (or one that is not an object)."""
    refunded: tuple[bool, ...]
    """Whether each record lists a refund (WooCommerce v3 ``refunds``: a non-empty list)."""

    @property
    def count(self) -> int:
        return len(self.ids)


class ShapeError(Exception):
    """The page is JSON, but not the envelope expected (no order list where one should be): asking
    again will not change it, so it is not a ``ValueError`` (which the HTTP policy retries)."""


def _id_text(value: Any) -> str | None:
    return None if value is None else str(value)


def read_heads(body: bytes, orders_key: str | None) -> PageHeads:
    """The page's heads; raises ``ValueError`` for bytes that are not JSON, ``ShapeError`` for JSON that
    holds no order list under ``orders_key`` (a bare list when it is None)."""
    try:
        if orders_key is None:
            fields: dict[str, Any] = {}
            listed: bytes | msgspec.Raw = body
        else:
            parts = _envelope.decode(body)
            if orders_key not in parts:
                raise ShapeError(f"response has no {orders_key!r} list")
            listed = parts.pop(orders_key)
            fields = {key: _any.decode(raw) for key, raw in parts.items()}
        heads = _heads.decode(listed)
        return PageHeads(
            fields=fields,
            ids=tuple(_id_text(h.id) for h in heads),
            refunded=tuple(bool(h.refunds) for h in heads),
        )
    except msgspec.ValidationError:
        return _slow_heads(body, orders_key)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


def _slow_heads(body: bytes, orders_key: str | None) -> PageHeads:
    """The same answers from a full parse, for a page with an odd record or envelope."""
    return parse_page(body, orders_key)[0]


def parse_page(body: bytes, orders_key: str | None) -> tuple[PageHeads, list[Any]]:
    """The heads and the parsed orders in one parse, for callers that want the orders (tools, the
    incremental sync); ``ValueError`` and ``ShapeError`` as :func:`read_heads`."""
    data = orjson.loads(body)
    fields: dict[str, Any] = {}
    if orders_key is not None:
        if not isinstance(data, dict):
            raise ShapeError(f"response has no {orders_key!r} envelope")
        fields = {k: v for k, v in data.items() if k != orders_key}
        data = data.get(orders_key)
    if not isinstance(data, list):
        raise ShapeError(f"expected a JSON list of orders, got {type(data).__name__}")
    return heads_of(data, fields), data


def heads_of(records: list[Any], fields: dict[str, Any] | None = None) -> PageHeads:
    """Heads of orders already parsed."""
    ids = tuple(str(r["id"]) if isinstance(r, dict) and r.get("id") is not None else None for r in records)
    refunded = tuple(isinstance(r, dict) and bool(r.get("refunds")) for r in records)
    return PageHeads(fields=fields or {}, ids=ids, refunded=refunded)


def split_records(body: bytes, orders_key: str | None) -> list[msgspec.Raw]:
    """Each order's bytes exactly as the shop sent them, in listing order, none of them parsed."""
    listed: bytes | msgspec.Raw = body if orders_key is None else _envelope.decode(body)[orders_key]
    return _raw_list.decode(listed)


def heads_decoder(orders_key: str | None, *, keep_orders: bool = False) -> Callable[[bytes], Any]:
    """A decoder for :class:`ordersync.http.HttpPolicy`: the page's heads instead of its parsed body,
    or with ``keep_orders`` the heads and the parsed orders from one parse."""
    if keep_orders:
        return lambda body: parse_page(body, orders_key)
    return lambda body: (read_heads(body, orders_key), [])
