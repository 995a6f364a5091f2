"""Named converters the mapping files may use. Each is small, pure and raises ValueError on bad input.

A converter takes the raw value (or, for ``paths:``, the list of raw values) and the context. Mapping
files name converters; they never hold expressions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from ordersync.mapping.context import MappingContext

Converter = Callable[[Any, MappingContext], Any]

_COLON_SPACES = re.compile(r":\s+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_id(value: Any, _: MappingContext) -> str | None:
    """Ids come as numbers or strings ("48" and 48 are the same order)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected an id, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected an id, got {value!r}")
        return str(int(value))
    if isinstance(value, int | str):
        return str(value).strip()
    raise ValueError(f"expected an id, got {type(value).__name__}")


def to_str(value: Any, _: MappingContext) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return str(value)


def to_text(value: Any, ctx: MappingContext) -> str | None:
    """Text with surrounding blanks removed; an empty string means nothing was given."""
    text = to_str(value, ctx)
    if text is None:
        return None
    text = text.strip()
    return text or None


def to_lower(value: Any, ctx: MappingContext) -> str | None:
    text = to_text(value, ctx)
    return text.lower() if text else text


def _parse_decimal(value: Any) -> Decimal | None:
    kind = type(value)
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"not a finite number: {value!r}")
        return Decimal(repr(value))
    if kind is int:
        return Decimal(value)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"not a number: {value!r}")
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


# Shops repeat the same few hundred prices, taxes and quantities across thousands of orders, and a
# Decimal is immutable: a conversion is looked up instead of parsed and rounded again. One cache per
# exact input type (1 and 1.0 give Decimals that print differently; True is not 1), bounded in size.
_CACHE_LIMIT = 65_536
_DECIMALS: dict[type, dict[Any, Decimal | None]] = {float: {}, str: {}, int: {}}
_MONEY: dict[tuple[Decimal, type], dict[Any, Decimal | None]] = {}


def _remember(cache: dict[Any, Decimal | None], value: Any, number: Decimal | None) -> Decimal | None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[value] = number
    return number


def to_decimal(value: Any, _: MappingContext) -> Decimal | None:
    cache = _DECIMALS.get(type(value))
    if cache is None:
        return _parse_decimal(value)
    try:
        return cache[value]
    except KeyError:
        return _remember(cache, value, _parse_decimal(value))


def _quantize(number: Decimal, ctx: MappingContext) -> Decimal:
    return number.quantize(ctx.quantum, rounding=ROUND_HALF_UP)


def to_money(value: Any, ctx: MappingContext) -> Decimal | None:
    """Money in the currency's precision; floats go through their repr, never binary arithmetic."""
    kind = type(value)
    if kind is not float and kind is not str and kind is not int:
        number = _parse_decimal(value)
        return None if number is None else _quantize(number, ctx)
    cache = _MONEY.get((ctx.quantum, kind))
    if cache is None:
        cache = _MONEY.setdefault((ctx.quantum, kind), {})
    try:
        return cache[value]
    except KeyError:
        number = _parse_decimal(value)
        return _remember(cache, value, None if number is None else _quantize(number, ctx))


def to_money_or_zero(value: Any, ctx: MappingContext) -> Decimal:
    """For amounts where the platform writes "" or null for nothing (WooCommerce fee amounts)."""
    money = to_money(value, ctx)
    return _quantize(Decimal(0), ctx) if money is None else money


def abs_money(value: Any, ctx: MappingContext) -> Decimal | None:
    money = to_money(value, ctx)
    return None if money is None else abs(money)


def _numbers(values: list[Any], ctx: MappingContext) -> list[Decimal]:
    return [to_decimal(v, ctx) or Decimal(0) for v in values]


def sum_money(values: list[Any], ctx: MappingContext) -> Decimal:
    return _quantize(sum(_numbers(values, ctx), Decimal(0)), ctx)


def subtract_money(values: list[Any], ctx: MappingContext) -> Decimal:
    """The first value less all the others."""
    first, *rest = _numbers(values, ctx)
    return _quantize(first - sum(rest, Decimal(0)), ctx)


def multiply_money(values: list[Any], ctx: MappingContext) -> Decimal:
    result = Decimal(1)
    for number in _numbers(values, ctx):
        result *= number
    return _quantize(result, ctx)


def mul_sub_money(values: list[Any], ctx: MappingContext) -> Decimal:
    """a × b − c: a line's total from unit price, quantity and discount."""
    a, b, c = _numbers(values, ctx)
    return _quantize(a * b - c, ctx)


def to_int(value: Any, ctx: MappingContext) -> int | None:
    number = to_decimal(value, ctx)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise ValueError(f"not a whole number: {value!r}")
    return int(number)


def to_bool(value: Any, _: MappingContext) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
    raise ValueError(f"not a boolean: {value!r}")


def _parse_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    text = _COLON_SPACES.sub(":", value.strip())  # WebCommander writes "2023-05-10T10: 02: 15"
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a timestamp: {value!r}") from None


def local_datetime(value: Any, ctx: MappingContext) -> datetime | None:
    """A time without an offset is the shop's wall-clock time; stored as UTC."""
    parsed = _parse_datetime(value)
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ctx.timezone)
    return parsed.astimezone(UTC)


def utc_datetime(value: Any, _: MappingContext) -> datetime | None:
    """A time without an offset is already UTC (WooCommerce ``*_gmt`` fields)."""
    parsed = _parse_datetime(value)
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def utc_datetime_epoch_none(value: Any, ctx: MappingContext) -> datetime | None:
    """Legacy WooCommerce writes 1970-01-01T00:00:00Z for "never"."""
    parsed = utc_datetime(value, ctx)
    return None if parsed == _EPOCH else parsed


def _ref(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return value.get(key)
    return None


def ref_id(value: Any, ctx: MappingContext) -> str | None:
    """WebCommander gives a country or state as an id, or as an object carrying that id."""
    if isinstance(value, dict):
        return to_id(value.get("id"), ctx)
    return to_id(value, ctx)


def ref_code(value: Any, ctx: MappingContext) -> str | None:
    return to_text(_ref(value, "code"), ctx)


def country_code(value: Any, ctx: MappingContext) -> str | None:
    """ISO code of a country given as an object (its ``code``) or as the shop's bare id, read through
    the shop's country list (``country_ids`` in the config); None when neither says."""
    code = ref_code(value, ctx)
    if code is not None:
        return code.upper()
    ident = ref_id(value, ctx)
    return ctx.country_codes.get(ident) if ident is not None else None


def state_code(value: Any, ctx: MappingContext) -> str | None:
    """A state's own code ('VIC', as WooCommerce gives it) from an object or the shop's bare id."""
    code = ref_code(value, ctx)
    if code is not None:
        return code
    ident = ref_id(value, ctx)
    known = ctx.state_codes.get(ident) if ident is not None else None
    return known[1] if known else None


def ref_name(value: Any, ctx: MappingContext) -> str | None:
    return to_text(_ref(value, "name"), ctx)


def variation_attributes(value: Any, _: MappingContext) -> list[dict[str, str]]:
    """``["Colour: red", "Size: XS"]`` -> name/value pairs; a bare entry keeps its text as the value."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"expected a list of variations, got {type(value).__name__}")
    attributes = []
    for entry in value:
        if isinstance(entry, dict):
            name, val = entry.get("name") or entry.get("key"), entry.get("value") or entry.get("option")
            attributes.append({"name": str(name), "value": str(val)})
            continue
        name, sep, val = str(entry).partition(":")
        attributes.append(
            {"name": name.strip(), "value": val.strip()} if sep else {"name": "", "value": name}
        )
    return attributes


def id_list(value: Any, ctx: MappingContext) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"expected a list of ids, got {type(value).__name__}")
    return [i for i in (to_id(v, ctx) for v in value) if i is not None]


def latest_local_datetime(value: Any, ctx: MappingContext) -> datetime | None:
    """The latest of several shop-local times (a list), e.g. when the last payment was taken."""
    if not value:
        return None
    times = [t for t in (local_datetime(v, ctx) for v in value) if t is not None]
    return max(times) if times else None


def id_nonzero(value: Any, ctx: MappingContext) -> str | None:
    """WooCommerce writes 0 for "none": a guest's ``customer_id``, a simple product's ``variation_id``."""
    ident = to_id(value, ctx)
    return None if ident == "0" else ident


def any_text(value: Any, ctx: MappingContext) -> str | None:
    """Meta values of any type as text: objects and lists as compact JSON, so odd meta never
    quarantines an order."""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return to_str(value, ctx)


def abs_decimal(value: Any, ctx: MappingContext) -> Decimal | None:
    """Refund lines carry negative quantities; canonical refunds are positive."""
    number = to_decimal(value, ctx)
    return None if number is None else abs(number)


def join_text(values: list[Any], ctx: MappingContext) -> str | None:
    """First and last name into one, skipping empty parts."""
    parts = [text for text in (to_text(v, ctx) for v in values) if text]
    return " ".join(parts) or None


def money_when(values: list[Any], ctx: MappingContext) -> Decimal | None:
    """The second value as money when the first is set and not false (a payment only once paid)."""
    marker, amount = values
    if marker is None or marker is False or marker == "":
        return None
    return to_money(amount, ctx)


def first_id(values: list[Any], ctx: MappingContext) -> str | None:
    """The first id of a plucked list (a refund line's ``_refunded_item_id`` meta)."""
    for value in values:
        ident = id_nonzero(value, ctx)
        if ident is not None:
            return ident
    return None


_ATTRIBUTE_KEY = re.compile(r"^[a-z0-9_-]+$")


def product_unless_variation(values: list[Any], ctx: MappingContext) -> str | None:
    """The legacy API's ``product_id``, unless the line is a variation: that id is then the
    variation's, and the product it belongs to is not given (None, never the wrong id).

    A variation line's meta holds its attributes under their slugs (``pa_size``, ``colour``) with the
    values WooCommerce also puts in the line's name ("T-Shirt - S"); other visible meta (core's
    "Backordered", an add-on's label) has neither shape and leaves a simple product's id alone."""
    product_id, meta, name = values
    _, dash, suffix = str(name or "").rpartition(" - ")
    in_name = {part.strip().lower() for part in suffix.split(",")} if dash else set()
    for entry in meta if isinstance(meta, list) else []:
        if not isinstance(entry, dict):
            continue
        key, value = str(entry.get("key", "")), str(entry.get("value", "")).strip().lower()
        if key.startswith("pa_") or (_ATTRIBUTE_KEY.match(key) and value in in_name):
            return None
    return id_nonzero(product_id, ctx)


def abs_sum_money(values: list[Any], ctx: MappingContext) -> Decimal:
    """Refund totals the order lists as negative amounts, summed as a positive one."""
    return abs(sum_money(values, ctx))


def _refunded(refunds: Any, ctx: MappingContext) -> Decimal:
    """The sum of refund summaries (negative ``total``) or refund objects (positive ``amount``)."""
    refunded = Decimal(0)
    for refund in refunds if isinstance(refunds, list) else []:
        if isinstance(refund, dict):
            refunded += abs(to_decimal(refund.get("amount", refund.get("total")), ctx) or Decimal(0))
    return refunded


def paid_net(values: list[Any], ctx: MappingContext) -> Decimal:
    """What the customer has paid and not had back, for a platform that records only *that* the
    order was paid (WooCommerce): the total less its refunds once paid (or refunded), else 0.
    WebCommander states the same figure itself (``orderSummary.paid``): one meaning on both."""
    paid, total, refunds = values
    refunded = _refunded(refunds, ctx)
    if paid in (None, False, "") and not refunded:  # a refund proves a payment, as the status says
        return _quantize(Decimal(0), ctx)
    net = (to_decimal(total, ctx) or Decimal(0)) - refunded
    return _quantize(max(net, Decimal(0)), ctx)


def paid_refund_status(values: list[Any], ctx: MappingContext) -> str:
    """A payment status for platforms that have none of their own (WooCommerce).

    Inputs: a paid marker (``date_paid`` or the legacy ``paid`` flag), the order total, the refunds
    (summaries with negative ``total`` or refund objects with positive ``amount``) and the order status.
    """
    paid, total, refunds, status = values
    refunded = _refunded(refunds, ctx)
    total_amount = to_decimal(total, ctx) or Decimal(0)
    if refunded and refunded >= total_amount:
        return "refunded"
    if refunded:
        return "partially_refunded"
    if paid not in (None, False, ""):
        return "paid"
    if str(status).lower() == "failed":
        return "failed"
    if str(status).lower() in ("cancelled", "trash"):
        return "cancelled"
    return "unpaid"


CONVERTERS: dict[str, Converter] = {
    "id": to_id,
    "str": to_str,
    "text": to_text,
    "lower": to_lower,
    "decimal": to_decimal,
    "int": to_int,
    "bool": to_bool,
    "money": to_money,
    "money_or_zero": to_money_or_zero,
    "abs_money": abs_money,
    "local_datetime": local_datetime,
    "utc_datetime": utc_datetime,
    "utc_datetime_epoch_none": utc_datetime_epoch_none,
    "ref_id": ref_id,
    "ref_code": ref_code,
    "ref_name": ref_name,
    "country_code": country_code,
    "state_code": state_code,
    "variation_attributes": variation_attributes,
    "id_list": id_list,
    "latest_local_datetime": latest_local_datetime,
    "id_nonzero": id_nonzero,
    "any_text": any_text,
    "abs_decimal": abs_decimal,
}

MULTI_CONVERTERS: dict[str, Converter] = {
    "sum_money": sum_money,
    "subtract_money": subtract_money,
    "multiply_money": multiply_money,
    "mul_sub_money": mul_sub_money,
    "join_text": join_text,
    "money_when": money_when,
    "first_id": first_id,
    "abs_sum_money": abs_sum_money,
    "product_unless_variation": product_unless_variation,
    "paid_refund_status": paid_refund_status,
    "paid_net": paid_net,
}
