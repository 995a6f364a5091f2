"""Compiles a mapping file into closures once, then maps raw dicts to canonical orders with no I/O.

A mapping file has three parts::

    tables:   value tables for enums, e.g. order_status: {pending: pending, _default: other}
    objects:  named sub-specs (address, line_item, ...) used by `object:`, `each:` and `build:`
    order:    the spec of the Order itself

A field is either a path string (``billing.firstName``, read as text) or a mapping with:
``path`` (a path, or a list of alternative paths: the first non-null wins), ``paths`` (several values
for one converter), ``const``, ``context`` (currency, shop, platform), ``convert`` (a converter name),
``table`` (a value table), ``object`` / ``each`` (a sub-spec for an object / a list of objects),
``where`` (keep list entries where a path is ``present``/``absent``/``in`` a set, or does not
start with ``not_prefix``), ``pluck`` (a path
read from each kept entry), ``build`` (objects built from the current record, dropped by
``drop_if_zero``), ``concat`` (the lists of several such fields, one after the other: a refund's
product, shipping and fee lines as one list), ``default`` and ``required``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ordersync.mapping.context import MappingContext
from ordersync.mapping.converters import CONVERTERS, MULTI_CONVERTERS, to_str
from ordersync.mapping.errors import MappingError, MappingSpecError
from ordersync.models import Order

ENGINE_VERSION = "1"

Getter = Callable[[Any, MappingContext, str], Any]
"""(record, context, raw path of the record) -> mapped value."""

_FIELD_KEYS = {
    "path",
    "paths",
    "const",
    "context",
    "convert",
    "table",
    "object",
    "each",
    "where",
    "pluck",
    "build",
    "drop_if_zero",
    "default",
    "required",
    "concat",
}
_CONTEXT_FIELDS = {"currency", "shop", "platform"}
_PLAIN_KEYS = {"path", "paths", "convert", "required", "table", "default"}


def _join(where: str, path: str) -> str:
    if not path:
        return where or "(record)"
    return f"{where}.{path}" if where else path


def _path_reader(path: str) -> Callable[[Any], Any]:
    parts = path.split(".")
    if len(parts) == 1:
        key = parts[0]
        return lambda record: record.get(key) if isinstance(record, dict) else None

    def read(record: Any) -> Any:
        for part in parts:
            if not isinstance(record, dict):
                return None
            record = record.get(part)
        return record

    return read


class _Compiler:
    def __init__(self, spec: dict[str, Any], source: str, *, straight: bool = True):
        self.source = source
        self.straight = straight
        self.tables: dict[str, dict[str, Any]] = spec.get("tables") or {}
        self.object_specs: dict[str, dict[str, Any]] = spec.get("objects") or {}
        self.compiled: dict[str, Callable[[Any, MappingContext, str], dict[str, Any]]] = {}

    def fail(self, where: str, problem: str) -> MappingSpecError:
        return MappingSpecError(f"mapping {self.source}: {where}: {problem}")

    def object(self, name: str, where: str) -> Callable[[Any, MappingContext, str], dict[str, Any]]:
        if name not in self.object_specs:
            raise self.fail(where, f"unknown object {name!r}")
        if name not in self.compiled:
            self.compiled[name] = lambda *a: None  # type: ignore[assignment,return-value]  # recursion guard
            self.compiled[name] = self.fields(self.object_specs[name], f"objects.{name}")
        return lambda record, ctx, raw_where: self.compiled[name](record, ctx, raw_where)

    def fields(
        self, spec: dict[str, Any], where: str
    ) -> Callable[[Any, MappingContext, str], dict[str, Any]]:
        if not isinstance(spec, dict):
            raise self.fail(where, "must be a mapping of fields")
        getters = [(name, self.field(field_spec, f"{where}.{name}")) for name, field_spec in spec.items()]

        def build(record: Any, ctx: MappingContext, raw_where: str) -> dict[str, Any]:
            return {name: getter(record, ctx, raw_where) for name, getter in getters}

        if not self.straight:
            return build
        plain = [self._plain(field_spec, f"{where}.{name}") for name, field_spec in spec.items()]
        return _straight_line(getters, plain, build)

    def _plain(self, spec: Any, where: str) -> _Plain | None:
        """A field read from paths through one converter or value table: the case a straight-line
        builder inlines (anything else keeps its getter)."""
        if isinstance(spec, str):
            return _Plain([spec.split(".")], CONVERTERS["str"], False, None, multi=False)
        if not isinstance(spec, dict) or set(spec) - {
            "path",
            "paths",
            "convert",
            "required",
            "table",
            "default",
        }:
            return None
        if ("path" in spec) == ("paths" in spec) or ("convert" in spec) == ("table" in spec):
            return None
        multi = "paths" in spec
        paths = spec["paths"] if multi else spec["path"]
        if not isinstance(paths, str | list) or (isinstance(paths, list) and (not multi or not paths)):
            return None  # several alternative paths: the getter keeps "first that is set"
        convert = self._converter(spec, where)
        if convert is None:
            return None
        default = spec.get("default")
        if isinstance(default, float):
            default = Decimal(str(default))
        parts = [p.split(".") for p in (paths if multi else [paths])]
        return _Plain(parts, convert, bool(spec.get("required")), default, multi=multi)

    def field(self, spec: Any, where: str) -> Getter:
        if isinstance(spec, str):
            spec = {"path": spec, "convert": "str"}
        if not isinstance(spec, dict):
            raise self.fail(where, "a field is a path string or a mapping")
        unknown = set(spec) - _FIELD_KEYS
        if unknown:
            raise self.fail(where, f"unknown key(s) {sorted(unknown)}")
        if "concat" in spec:
            return self._concat(spec, where)
        source = self._source(spec, where)
        shape = self._shape(spec, where)
        convert = self._converter(spec, where) if shape is None else None
        default = spec.get("default")
        required = bool(spec.get("required"))
        simple = isinstance(spec.get("path"), str) and "." not in spec["path"] and shape is None
        if simple and convert is not None and default is None:
            return self._fast_field(spec["path"], convert, required)

        def get(record: Any, ctx: MappingContext, raw_where: str) -> Any:
            value, label = source(record, ctx)
            try:
                if shape is not None:
                    value = shape(value, ctx, _join(raw_where, label))
                elif convert is not None:
                    value = convert(value, ctx)
            except MappingError:
                raise
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise MappingError(_join(raw_where, label), str(exc), value) from None
            if value is None:
                if required:
                    raise MappingError(_join(raw_where, label), "is required but missing")
                if default is not None:
                    return Decimal(str(default)) if isinstance(default, float) else default
            return value

        return get

    def _concat(self, spec: dict[str, Any], where: str) -> Getter:
        parts = spec["concat"]
        if set(spec) != {"concat"} or not isinstance(parts, list) or not parts:
            raise self.fail(where, "concat takes a non-empty list of fields and nothing beside it")
        getters = [self.field(part, f"{where}.concat[{i}]") for i, part in enumerate(parts)]

        def joined(record: Any, ctx: MappingContext, raw_where: str) -> list[Any]:
            out: list[Any] = []
            for getter in getters:
                value = getter(record, ctx, raw_where)
                if value is None:
                    continue
                if not isinstance(value, list):
                    raise MappingError(raw_where or "(record)", "concat: a part did not give a list", value)
                out.extend(value)
            return out

        return joined

    @staticmethod
    def _fast_field(key: str, convert: Callable[[Any, MappingContext], Any], required: bool) -> Getter:
        """The common case (one top-level key, one converter) without the general path's indirections."""

        def get(record: Any, ctx: MappingContext, raw_where: str) -> Any:
            value = record.get(key) if type(record) is dict else None
            try:
                result = convert(value, ctx)
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise MappingError(_join(raw_where, key), str(exc), value) from None
            if result is None and required:
                raise MappingError(_join(raw_where, key), "is required but missing")
            return result

        return get

    def _source(self, spec: dict[str, Any], where: str) -> Callable[[Any, MappingContext], tuple[Any, str]]:
        """Reads a field's raw value; the label is the raw path, joined to the record's path on error."""
        given = [k for k in ("path", "paths", "const", "context") if k in spec]
        if len(given) > 1:
            raise self.fail(where, f"give one of path, paths, const, context (got {given})")
        if "const" in spec:
            const = spec["const"]
            return lambda record, ctx: (const, "")
        if "context" in spec:
            name = spec["context"]
            if name not in _CONTEXT_FIELDS:
                raise self.fail(where, f"unknown context value {name!r} (known: {sorted(_CONTEXT_FIELDS)})")
            return lambda record, ctx: (getattr(ctx, name), f"(shop {name})")
        if "paths" in spec:
            paths = spec["paths"]
            if not isinstance(paths, list) or not paths:
                raise self.fail(where, "paths must be a non-empty list")
            readers = [_path_reader(p) for p in paths]
            label = ",".join(paths)
            return lambda record, ctx: ([r(record) for r in readers], label)
        if "path" in spec:
            paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
            readers = [(p, _path_reader(p)) for p in paths]
            if len(readers) == 1:
                ((path, reader),) = readers
                return lambda record, ctx: (reader(record), path)

            def first(record: Any, ctx: MappingContext) -> tuple[Any, str]:
                for path, reader in readers:
                    value = reader(record)
                    if value is not None:
                        return value, path
                return None, readers[0][0]

            return first
        return lambda record, ctx: (record, "")

    def _converter(self, spec: dict[str, Any], where: str) -> Callable[[Any, MappingContext], Any] | None:
        name = spec.get("convert")
        if "table" in spec:
            table_name = spec["table"]
            if table_name not in self.tables:
                raise self.fail(where, f"unknown table {table_name!r}")
            table = {str(k).lower(): v for k, v in self.tables[table_name].items()}
            fallback = table.get("_default")

            def lookup(value: Any, ctx: MappingContext) -> Any:
                if value is None:
                    return None
                return table.get(str(value).strip().lower(), fallback)

            return lookup
        if name is None:
            return None
        multi = "paths" in spec
        registry = MULTI_CONVERTERS if multi else CONVERTERS
        if name not in registry:
            kind = "multi-value converter (for paths:)" if multi else "converter"
            raise self.fail(where, f"unknown {kind} {name!r} (known: {sorted(registry)})")
        return registry[name]

    def _list_converter(
        self, spec: dict[str, Any], where: str
    ) -> Callable[[Any, MappingContext], Any] | None:
        """A plucked list goes to a multi-value converter (sum_money) or one that takes a list."""
        name = spec.get("convert")
        if name is None:
            return None
        converter = MULTI_CONVERTERS.get(name) or CONVERTERS.get(name)
        if converter is None:
            raise self.fail(where, f"unknown converter {name!r}")
        return converter

    def _shape(self, spec: dict[str, Any], where: str) -> Callable[[Any, MappingContext, str], Any] | None:
        """Objects, lists and built lists: the parts of a field that recurse into sub-specs."""
        if "build" in spec:
            builders = [self.object(name, f"{where}.build") for name in spec["build"]]
            zero_fields = spec.get("drop_if_zero") or []

            def build(record: Any, ctx: MappingContext, raw_path: str) -> list[dict[str, Any]]:
                built = [b(record, ctx, raw_path) for b in builders]
                return [item for item in built if not zero_fields or any(item.get(f) for f in zero_fields)]

            return build
        if "object" in spec:
            builder = self.object(spec["object"], where)

            def one(value: Any, ctx: MappingContext, raw_path: str) -> dict[str, Any] | None:
                if value is None:
                    return None
                if not isinstance(value, dict):
                    raise MappingError(raw_path, f"expected an object, got {type(value).__name__}", value)
                return builder(value, ctx, raw_path)

            return one
        keep = self._where(spec.get("where"), where)
        pluck = _path_reader(spec["pluck"]) if "pluck" in spec else None
        convert = self._list_converter(spec, where) if pluck is not None else None
        if "each" in spec:
            builder = self.object(spec["each"], where)

            def each(value: Any, ctx: MappingContext, raw_path: str) -> list[dict[str, Any]]:
                if value is None:
                    return []
                if not isinstance(value, list):
                    raise MappingError(raw_path, f"expected a list, got {type(value).__name__}", value)
                return [
                    builder(item, ctx, f"{raw_path}[{i}]")
                    for i, item in enumerate(value)
                    if keep is None or keep(item)
                ]

            return each
        if pluck is not None:

            def plucked(value: Any, ctx: MappingContext, raw_path: str) -> Any:
                if value is None:
                    value = []
                if not isinstance(value, list):
                    raise MappingError(raw_path, f"expected a list, got {type(value).__name__}", value)
                values = [pluck(item) for item in value if keep is None or keep(item)]
                return convert(values, ctx) if convert is not None else values

            return plucked
        if keep is not None:
            raise self.fail(where, "where: needs each: or pluck:")
        return None

    def _where(self, spec: Any, where: str) -> Callable[[Any], bool] | None:
        if spec is None:
            return None
        if not isinstance(spec, dict) or len(spec) != 1:
            raise self.fail(f"{where}.where", "give exactly one of present, absent, in, not_prefix")
        ((test, arg),) = spec.items()
        if test == "present":
            reader = _path_reader(arg)
            return lambda item: reader(item) is not None
        if test == "absent":
            reader = _path_reader(arg)
            return lambda item: reader(item) is None
        if test == "in" and isinstance(arg, dict) and len(arg) == 1:
            ((path, allowed),) = arg.items()
            reader = _path_reader(path)
            values = {str(v).lower() for v in allowed}
            return lambda item: str(reader(item)).lower() in values
        if test == "not_prefix" and isinstance(arg, dict) and len(arg) == 1:
            ((path, prefix),) = arg.items()
            reader = _path_reader(path)
            return lambda item: not str(reader(item)).startswith(str(prefix))
        raise self.fail(f"{where}.where", f"unknown test {test!r}")


@dataclass(frozen=True)
class _Plain:
    paths: list[list[str]]
    """Each path as its keys; one path, or the ``paths:`` of a multi-value converter."""
    convert: Callable[[Any, MappingContext], Any]
    required: bool
    default: Any
    multi: bool


def _dig(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


class _Missing(Exception):
    """A required value was missing on the straight-line path: the general path says where."""


def _required(value: Any) -> Any:
    if value is None:
        raise _Missing
    return value


def _straight_line(
    getters: list[tuple[str, Getter]],
    plain: list[_Plain | None],
    general: Callable[[Any, MappingContext, str], dict[str, Any]],
) -> Callable[[Any, MappingContext, str], dict[str, Any]]:
    """The same builder as ``general``, compiled into one function: a dict display in which each
    plain field is a chain of ``get`` calls and a converter call, and every other field calls its
    getter.

    Mapping files hold no expressions, and none reach this code: the source is made only of numbered
    names and ``repr`` literals of the file's keys. It computes exactly what ``general`` does, in the
    same order; on any error it runs ``general`` instead, which raises the error with its path
    (mapping is pure, so it fails the same way). Per field it saves closure calls, a try block and
    the dict comprehension's bookkeeping: about half of what mapping an order cost."""
    namespace: dict[str, Any] = {
        "general": general,
        "MappingError": MappingError,
        "_required": _required,
        "_dig": _dig,
        "_or": _or,
    }
    items = []
    for i, ((name, getter), fast) in enumerate(zip(getters, plain, strict=True)):
        if fast is None:
            namespace[f"g{i}"] = getter
            items.append(f"{name!r}: g{i}(record, ctx, raw_where)")
            continue
        reads = []
        for keys in fast.paths:
            read = f"get({keys[0]!r})"
            for key in keys[1:]:
                read = f"_dig({read}, {key!r})"
            reads.append(read)
        namespace[f"c{i}"] = fast.convert
        value = f"c{i}([{', '.join(reads)}], ctx)" if fast.multi else f"c{i}({reads[0]}, ctx)"
        if fast.required:
            value = f"_required({value})"
        elif fast.default is not None:
            namespace[f"d{i}"] = fast.default
            value = f"_or({value}, d{i})"
        items.append(f"{name!r}: {value}")
    source = (
        "def build(record, ctx, raw_where):\n"
        "    if type(record) is not dict:\n"
        "        return general(record, ctx, raw_where)\n"
        "    get = record.get\n"
        "    try:\n"
        f"        return {{{', '.join(items)}}}\n"
        "    except MappingError:\n"
        "        raise\n"
        "    except Exception:\n"
        "        return general(record, ctx, raw_where)\n"
    )
    exec(compile(source, "<mapping builder>", "exec"), namespace)
    return namespace["build"]


def _pydantic_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


class OrderMapper:
    """A compiled mapping file. ``map`` is pure: the same payload and context give the same Order."""

    def __init__(
        self, spec: dict[str, Any], *, source: str = "<mapping>", text: str = "", straight: bool = True
    ):
        """``straight=False`` keeps the general builders only: the reference the compiled
        straight-line builders are tested against."""
        if not isinstance(spec, dict) or not isinstance(spec.get("order"), dict):
            raise MappingSpecError(f"mapping {source}: needs an 'order' section")
        unknown = set(spec) - {"version", "platform", "tables", "objects", "order"}
        if unknown:
            raise MappingSpecError(f"mapping {source}: unknown top-level key(s) {sorted(unknown)}")
        self.source = source
        self.spec = spec
        """The file as read: what the data dictionary's "who fills what" table is made from."""
        compiler = _Compiler(spec, source, straight=straight)
        self._build = compiler.fields(spec["order"], "order")
        unknown_fields = set(spec["order"]) - set(Order.model_fields)
        if unknown_fields:
            raise MappingSpecError(
                f"mapping {source}: order: unknown canonical field(s) {sorted(unknown_fields)}"
            )
        digest = hashlib.sha256((ENGINE_VERSION + "\0" + (text or repr(spec))).encode()).hexdigest()[:12]
        self.version = f"{spec.get('platform', 'mapping')}-{digest}"

    def map(self, raw: Any, ctx: MappingContext) -> Order:
        return self.validate(self.build(raw, ctx), ctx)

    def build(self, raw: Any, ctx: MappingContext) -> dict[str, Any]:
        """The canonical order as plain values, before the model checks it: what the columnar path
        (``mirror/columnar.py``) turns into rows without building models."""
        if not isinstance(raw, dict):
            raise MappingError("(record)", f"expected an object, got {type(raw).__name__}", raw)
        data = self._build(raw, ctx, "")
        data["platform"] = ctx.platform
        data["shop"] = ctx.shop
        _unfold_updated(data, ctx)
        return data

    def validate(self, data: dict[str, Any], ctx: MappingContext) -> Order:
        """The model's reading of a built order; a MappingError names the canonical field at fault."""
        try:
            return Order.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = _pydantic_path(first["loc"])
            raise MappingError(
                f"(canonical) {path}",
                first["msg"],
                to_str(first.get("input"), ctx) if not isinstance(first.get("input"), dict | list) else None,
            ) from None


def _unfold_updated(data: dict[str, Any], ctx: MappingContext) -> None:
    """A shop-local time in the autumn hour that happens twice is read as its first occurrence, except
    ``updated_at``, read as its second when the first would put it before ``created_at`` (an order
    created at 02:40 in the first pass and updated at 02:10 in the second)."""
    created, updated = data.get("created_at"), data.get("updated_at")
    if not isinstance(created, datetime) or not isinstance(updated, datetime) or updated >= created:
        return
    wall = updated.astimezone(ctx.timezone).replace(tzinfo=None)
    second = wall.replace(tzinfo=ctx.timezone, fold=1).astimezone(UTC)
    if second >= created:
        data["updated_at"] = second


def load_mapping_file(path: Path) -> OrderMapper:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise MappingSpecError(f"cannot read mapping {path}: {exc.strerror}") from None
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingSpecError(f"mapping {path} is not valid YAML: {exc}") from None
    return OrderMapper(spec, source=str(path), text=text)
