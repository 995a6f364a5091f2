"""Canonical order dicts straight to the mirror's Arrow tables, checked a column at a time.

Why: validating every order with pydantic and then reading the models back into rows cost more than
mapping the order. Here the dicts a mapping builds are flattened once (each object's defaults filled
in, one row tuple per object), every field becomes one Arrow array, and what pydantic would check is
checked on whole columns: Arrow refuses a wrong type, a NaN or a decimal that would lose digits, and
required fields, text lengths, enum values and aware times are checked here. The plans are derived
from the pydantic models, so the model stays the one contract.

Anything this path cannot prove the model would accept unchanged raises :class:`NotCanonical`; the
caller then validates those orders with pydantic, which names the field at fault (quarantine) or
accepts them (the rows are then built from the models). ``tests/mirror/test_columnar.py`` proves the
two paths give the same tables.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from operator import itemgetter
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from annotated_types import MaxLen, MinLen
from pydantic import AwareDatetime, BaseModel

from ordersync.mirror.batch import (
    _CHILDREN,
    _LINE_FIELDS,
    _ORDER_FIELDS,
    _SCHEMAS,
    OrderKey,
)
from ordersync.mirror.schema import ADDRESS_FIELDS
from ordersync.models import (
    Address,
    Attribute,
    Comment,
    CouponLine,
    FeeLine,
    LineItem,
    Order,
    Payment,
    Refund,
    RefundLine,
    Shipment,
    ShippingLine,
    TaxAmount,
    TaxLine,
)


class NotCanonical(Exception):
    """These dicts are not provably what the model would hold: validate them with pydantic."""


_REQUIRED = object()
"""The default of a required field: never a value Arrow converts, so a missing field fails."""
_WIDE_DECIMAL = pa.decimal128(38, 18)
"""For decimals the mirror does not hold: wide enough for any amount a shop sends."""
_UTC = pa.timestamp("us", tz="UTC")
_ZERO = Decimal(0)

# Each child table's model and its (column, field) pairs, as ``batch.order_tables`` writes them.
_TABLE_MODELS: dict[str, type[BaseModel]] = {
    "tax_lines": TaxLine,
    "shipping_lines": ShippingLine,
    "fee_lines": FeeLine,
    "coupon_lines": CouponLine,
    "payments": Payment,
    "refunds": Refund,
    "comments": Comment,
    "shipments": Shipment,
}
_REFUND_LINE_FIELDS = [
    ("line_item_id", "line_item_id"),
    ("product_id", "product_id"),
    ("quantity", "quantity"),
    ("amount", "amount"),
    ("tax", "tax"),
    ("kind", "kind"),
]


def _mirror_types() -> dict[tuple[type[BaseModel], str], pa.DataType]:
    """The Arrow type of every model field the mirror holds, so its array is built once, as stored."""
    types_: dict[tuple[type[BaseModel], str], pa.DataType] = {}

    def note(model: type[BaseModel], table: str, pairs: Sequence[tuple[str, str]]) -> None:
        schema = _SCHEMAS[table]
        for column, field in pairs:
            types_[(model, field)] = schema.field(column).type

    note(Order, "orders", [(name, name) for name in _ORDER_FIELDS])
    note(Address, "order_addresses", [(name, name) for name in ADDRESS_FIELDS])
    note(LineItem, "line_items", [*_LINE_FIELDS, ("sold_product_id", "sold_product_id")])
    for table, (_, pairs) in _CHILDREN.items():
        note(_TABLE_MODELS[table], table, pairs)
    note(RefundLine, "refund_lines", _REFUND_LINE_FIELDS)
    return types_


@dataclass(frozen=True)
class _Field:
    index: int
    name: str
    kind: str
    """str, decimal, bool, datetime, enum, strlist, model (one nested object), models (a list)."""
    nullable: bool
    arrow: pa.DataType | None
    min_len: int | None = None
    max_len: int | None = None
    allowed: pa.Array | None = None
    plan: _Plan | None = None


def _unwrap(annotation: Any, metadata: list[Any]) -> tuple[Any, bool, list[Any]]:
    """The field's core type, whether None is allowed, and its constraints (``Code | None`` is an
    Optional of an Annotated str with a FieldInfo holding MaxLen)."""
    nullable, constraints, kind = False, list(metadata), annotation
    while True:
        origin = get_origin(kind)
        if origin in (Union, types.UnionType):
            args = get_args(kind)
            rest = [a for a in args if a is not type(None)]
            if len(rest) != 1:
                raise TypeError(f"unsupported union {kind!r}")
            nullable = nullable or len(rest) < len(args)
            kind = rest[0]
        elif origin is Annotated:
            kind, *extra = get_args(kind)
            for item in extra:
                constraints.extend(getattr(item, "metadata", [item]))
        else:
            return kind, nullable, constraints


class _Plan:
    """How one model's objects become rows, and what to check on its columns."""

    def __init__(self, model: type[BaseModel], plans: dict[type[BaseModel], _Plan], arrow: dict[Any, Any]):
        plans[model] = self
        self.model = model
        self.defaults: dict[str, Any] = {}
        self.fields: list[_Field] = []
        for index, (name, info) in enumerate(model.model_fields.items()):
            if info.is_required():
                self.defaults[name] = _REQUIRED
            else:
                factory = info.default_factory
                self.defaults[name] = factory() if factory is not None else info.default  # type: ignore[call-arg]
            core, nullable, constraints = _unwrap(info.annotation, info.metadata)
            self.fields.append(self._field(index, name, core, nullable, constraints, plans, arrow))
        self.width = len(self.defaults)
        self.get: Callable[[dict[str, Any]], tuple[Any, ...]] = itemgetter(*self.defaults)
        self.nested = [
            (f.index, f.plan, f.kind == "models", f.name) for f in self.fields if f.plan is not None
        ]
        self.index = {f.name: f.index for f in self.fields}
        self.as_json = model in (Attribute, TaxAmount)
        """Kept as JSON text in the mirror (``line_items.attributes``/``taxes``), not as columns."""

    def _field(
        self,
        index: int,
        name: str,
        core: Any,
        nullable: bool,
        constraints: list[Any],
        plans: dict[type[BaseModel], _Plan],
        arrow: dict[Any, Any],
    ) -> _Field:
        mirrored = arrow.get((self.model, name))
        lengths = {
            "min_len": next((c.min_length for c in constraints if isinstance(c, MinLen)), None),
            "max_len": next((c.max_length for c in constraints if isinstance(c, MaxLen)), None),
        }
        if core is str:
            return _Field(index, name, "str", nullable, pa.string(), **lengths)
        if core is Decimal:
            return _Field(index, name, "decimal", nullable, mirrored or _WIDE_DECIMAL)
        if core is bool:
            return _Field(index, name, "bool", nullable, pa.bool_())
        if core is AwareDatetime:
            return _Field(index, name, "datetime", nullable, _UTC)
        if isinstance(core, type) and issubclass(core, Enum):
            values = pa.array(sorted(str(m.value) for m in core))
            return _Field(index, name, "enum", nullable, pa.string(), allowed=values)
        if get_origin(core) is Literal:
            return _Field(
                index, name, "enum", nullable, pa.string(), allowed=pa.array(sorted(get_args(core)))
            )
        if get_origin(core) is list:
            (item,) = get_args(core)
            if item is str:
                return _Field(index, name, "strlist", nullable, pa.list_(pa.string()))
            if isinstance(item, type) and issubclass(item, BaseModel):
                plan = plans.get(item) or _Plan(item, plans, arrow)
                return _Field(index, name, "models", nullable, None, plan=plan)
        if isinstance(core, type) and issubclass(core, BaseModel):
            plan = plans.get(core) or _Plan(core, plans, arrow)
            return _Field(index, name, "model", nullable, None, plan=plan)
        raise TypeError(f"{self.model.__name__}.{name}: no columnar check for {core!r}")


_PLANS: dict[type[BaseModel], _Plan] = {}
_ORDER = _Plan(Order, _PLANS, _mirror_types())


class _Rows:
    """One model's objects across the orders of a call: their row tuples, and where each sits."""

    __slots__ = ("parents", "positions", "rows")

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.parents: list[int] = []
        self.positions: list[Any] = []


def _walk(plan: _Plan, obj: Any, parent: int, position: Any, rows: dict[_Plan, _Rows]) -> int:
    if type(obj) is not dict:
        raise NotCanonical(f"{plan.model.__name__}: not an object")
    full = {**plan.defaults, **obj}
    if len(full) != plan.width:
        raise NotCanonical(f"{plan.model.__name__}: unknown field(s) {sorted(set(obj) - set(plan.defaults))}")
    values = plan.get(full)
    store = rows[plan]
    row = len(store.rows)
    store.rows.append(values)
    store.parents.append(parent)
    store.positions.append(position)
    for index, sub, many, name in plan.nested:
        value = values[index]
        if many:
            if type(value) is not list:
                raise NotCanonical(f"{plan.model.__name__}.{name}: not a list")
            if sub.nested:  # type: ignore[union-attr]
                for at, item in enumerate(value):
                    _walk(sub, item, row, at, rows)  # type: ignore[arg-type]
                continue
            # A list of plain objects (most of an order): the same steps inline, without a call each.
            leaf, defaults, width, get = rows[sub], sub.defaults, sub.width, sub.get  # type: ignore[index,union-attr]
            for at, item in enumerate(value):
                if type(item) is not dict or len(full := {**defaults, **item}) != width:
                    raise NotCanonical(f"{plan.model.__name__}.{name}[{at}]: not an object of the model")
                leaf.rows.append(get(full))
                leaf.parents.append(row)
                leaf.positions.append(at)
        elif value is not None:
            _walk(sub, value, row, name, rows)  # type: ignore[arg-type]
    return row


def _check(plan: _Plan, field: _Field, array: pa.Array) -> None:
    where = f"{plan.model.__name__}.{field.name}"
    if not field.nullable and array.null_count:
        raise NotCanonical(f"{where}: None")
    if field.kind == "str" and (field.max_len is not None or field.min_len is not None) and len(array):
        bounds = pc.min_max(pc.utf8_length(array))
        shortest, longest = bounds["min"].as_py(), bounds["max"].as_py()
        if field.max_len is not None and (longest or 0) > field.max_len:
            raise NotCanonical(f"{where}: longer than {field.max_len}")
        if field.min_len is not None and shortest is not None and shortest < field.min_len:
            raise NotCanonical(f"{where}: shorter than {field.min_len}")
    elif (
        field.kind == "enum"
        and len(array) > array.null_count
        and not pc.all(pc.is_in(array.drop_null(), value_set=field.allowed)).as_py()
    ):
        raise NotCanonical(f"{where}: not one of the allowed values")


def _columns(plan: _Plan, store: _Rows) -> dict[str, pa.Array]:
    """Each scalar field of the model as an Arrow array, checked."""
    count = len(store.rows)
    columns = list(zip(*store.rows, strict=True)) if count else [() for _ in plan.fields]
    arrays: dict[str, pa.Array] = {}
    for field in plan.fields:
        if field.plan is not None:
            continue
        values = columns[field.index]
        if field.kind == "datetime":
            for value in values:  # Arrow would read a naive time as UTC; pydantic refuses it
                if value is not None and (type(value) is not datetime or value.tzinfo is None):
                    raise NotCanonical(f"{plan.model.__name__}.{field.name}: not an aware datetime")
        elif field.kind == "decimal" and plan.as_json:
            for value in values:  # JSON keeps the type: pydantic writes a Decimal as text, an int as text too
                if value is not None and type(value) is not Decimal:
                    raise NotCanonical(f"{plan.model.__name__}.{field.name}: not a Decimal")
        try:
            array = pa.array(values, type=field.arrow)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise NotCanonical(f"{plan.model.__name__}.{field.name}: {exc}") from None
        _check(plan, field, array)
        arrays[field.name] = array
    return arrays


def fill_tax_figures(order: dict[str, Any]) -> None:
    """``Order._tax_figures`` on a canonical dict (the model's defaults where a key is absent)."""
    lines = order.get("tax_lines")
    if not lines or type(lines) is not list:
        return
    shipping_tax = order.get("shipping_tax", _ZERO)
    for at, line in enumerate(lines):
        if type(line) is not dict:
            return
        tax, ship = line.get("tax_total", _ZERO), line.get("shipping_tax_total", _ZERO)
        combined = line.get("combined_total")
        if tax is None and combined is not None and ship is None:
            if not shipping_tax:
                tax, ship = combined, _ZERO
            elif len(lines) == 1:
                ship = shipping_tax
                tax = combined - shipping_tax
        if combined is None and tax is not None and ship is not None:
            combined = tax + ship
        if (tax, ship, combined) != (
            line.get("tax_total", _ZERO),
            line.get("shipping_tax_total", _ZERO),
            line.get("combined_total"),
        ):
            lines[at] = {**line, "tax_total": tax, "shipping_tax_total": ship, "combined_total": combined}


def _decimal(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def _json_lists(plan: _Plan, values: Sequence[Any]) -> list[str | None]:
    """Nested lists kept as JSON, as ``model_dump(mode="json")`` writes them (every field, in order)."""
    defaults = plan.defaults
    return [
        orjson.dumps([{**defaults, **item} for item in items], default=_decimal).decode() if items else None
        for items in values
    ]


@dataclass
class Mapped:
    """One order as its mapping built it, with what the mirror stores beside it."""

    data: dict[str, Any]
    payload: bytes
    content_hash: str
    source_url: str
    details: bytes | None = None


def _take(array: pa.Array, indices: list[int]) -> pa.Array:
    return array.take(pa.array(indices, type=pa.int32()))


def dict_tables(items: Sequence[Mapped], now: datetime) -> dict[str, pa.Table]:
    """Every mirror table's rows for these orders, as ``batch.order_tables`` builds them from models.
    Raises NotCanonical when any value is not provably what the model would hold."""
    rows = {plan: _Rows() for plan in _PLANS.values()}
    for at, item in enumerate(items):
        fill_tax_figures(item.data)
        _walk(_ORDER, item.data, -1, at, rows)
    arrays = {plan: _columns(plan, store) for plan, store in rows.items()}
    order = arrays[_ORDER]
    count = len(items)
    keys = {
        "platform": order["platform"],
        "shop": order["shop"],
        "order_id": order["external_id"],
    }

    def table(name: str, columns: dict[str, pa.Array]) -> pa.Table:
        schema = _SCHEMAS[name]
        return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)

    def child_keys(parents: list[int]) -> dict[str, pa.Array]:
        indices = pa.array(parents, type=pa.int32())
        return {name: array.take(indices) for name, array in keys.items()}

    order_rows = rows[_ORDER].rows
    line_index = _ORDER.index["line_items"]
    tables: dict[str, pa.Table] = {
        "orders": table(
            "orders",
            {
                **keys,
                **{name: order[name] for name in _ORDER_FIELDS},
                "item_count": pa.array([len(r[line_index]) for r in order_rows], type=pa.int32()),
                "content_hash": pa.array([i.content_hash for i in items], type=pa.string()),
                "loaded_at": pa.array([now] * count, type=_UTC),
            },
        )
    }

    address = _PLANS[Address]
    tables["order_addresses"] = table(
        "order_addresses",
        {
            **child_keys(rows[address].parents),
            "kind": pa.array(rows[address].positions, type=pa.string()),
            **arrays[address],
        },
    )

    line = _PLANS[LineItem]
    line_rows = rows[line]
    line_arrays = arrays[line]
    attributes, taxes = line.index["attributes"], line.index["taxes"]
    tables["line_items"] = table(
        "line_items",
        {
            **child_keys(line_rows.parents),
            "position": pa.array(line_rows.positions, type=pa.int32()),
            **{column: line_arrays[attr] for column, attr in _LINE_FIELDS},
            "attributes": pa.array(
                _json_lists(_PLANS[Attribute], [r[attributes] for r in line_rows.rows]), type=pa.string()
            ),
            "taxes": pa.array(
                _json_lists(_PLANS[TaxAmount], [r[taxes] for r in line_rows.rows]), type=pa.string()
            ),
            "sold_product_id": line_arrays["sold_product_id"],
        },
    )

    for name, (_, pairs) in _CHILDREN.items():
        plan = _PLANS[_TABLE_MODELS[name]]
        store, columns = rows[plan], arrays[plan]
        tables[name] = table(
            name,
            {
                **child_keys(store.parents),
                "position": pa.array(store.positions, type=pa.int32()),
                **{column: columns[attr] for column, attr in pairs},
            },
        )

    refund, refund_line = _PLANS[Refund], _PLANS[RefundLine]
    refund_store, line_store = rows[refund], rows[refund_line]
    refund_ids = arrays[refund]["external_id"]
    tables["refund_lines"] = table(
        "refund_lines",
        {
            **child_keys([refund_store.parents[r] for r in line_store.parents]),
            "refund_position": pa.array(
                [refund_store.positions[r] for r in line_store.parents], type=pa.int32()
            ),
            "position": pa.array(line_store.positions, type=pa.int32()),
            "refund_id": _take(refund_ids, line_store.parents),
            **{column: arrays[refund_line][attr] for column, attr in _REFUND_LINE_FIELDS},
        },
    )

    tables["raw_orders"] = table(
        "raw_orders",
        {
            **keys,
            "payload": pa.array([i.payload.decode() for i in items], type=pa.string()),
            "content_hash": tables["orders"].column("content_hash").chunk(0),
            "source_url": pa.array([i.source_url for i in items], type=pa.string()),
            "received_at": pa.array([now] * count, type=_UTC),
            "details": pa.array([i.details.decode() if i.details else None for i in items], type=pa.string()),
        },
    )
    return tables


def key_of(data: dict[str, Any]) -> OrderKey | None:
    """The mirror key of a built order, or None when its parts are not plain text yet."""
    platform, shop, external_id = data.get("platform"), data.get("shop"), data.get("external_id")
    if isinstance(platform, Enum) and isinstance(shop, str) and type(external_id) is str:
        return (str(platform.value), shop, external_id)
    return None
