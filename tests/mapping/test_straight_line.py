"""The compiled straight-line builders compute exactly what the general builders do, errors included.

Every mapping file is compiled twice (``straight=False`` keeps the general closures only) and both
map the same inputs: the document examples, the recorded WooCommerce orders, generated sandbox orders,
and the same orders broken field by field, which must fail with the same path and reason.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from ordersync.mapping import MappingContext, MappingError, mappings_dir
from ordersync.mapping.converters import to_decimal, to_money
from ordersync.mapping.engine import OrderMapper
from ordersync.models import Platform
from ordersync.sandbox.webcommander.generator import generate_orders
from tests.woocommerce.test_recorded_mapping import V2_ORDERS, V3_ORDERS

DATA = Path(__file__).parents[1] / "data" / "webcommander"
WC = MappingContext(
    platform=Platform.WEBCOMMANDER, shop="wc", timezone=ZoneInfo("Australia/Melbourne"), currency="AUD"
)
WOO = MappingContext(
    platform=Platform.WOOCOMMERCE, shop="woo", timezone=ZoneInfo("Europe/Berlin"), currency="EUR"
)


def _pair(name: str) -> tuple[OrderMapper, OrderMapper]:
    path = mappings_dir() / f"{name}.yaml"
    text = path.read_text()
    spec = yaml.safe_load(text)
    return OrderMapper(spec, source=str(path), text=text), OrderMapper(
        spec, source=str(path), text=text, straight=False
    )


def _webcommander_orders() -> list[dict[str, Any]]:
    listed = json.loads((DATA / "external_orders_list.json").read_text())["orders"]
    single = json.loads((DATA / "external_order_single.json").read_text())["order"]
    return [*listed, single, *generate_orders(60, seed=7, realistic=True), *generate_orders(20, seed=3)]


CASES = [
    ("webcommander", WC, _webcommander_orders()),
    ("woocommerce_v3", WOO, V3_ORDERS),
    ("woocommerce_v2", WOO, V2_ORDERS),
]


def _outcome(mapper: OrderMapper, raw: Any, ctx: MappingContext) -> Any:
    try:
        return mapper.map(raw, ctx).model_dump()
    except MappingError as exc:
        return ("error", exc.path, exc.reason)


@pytest.mark.parametrize(("name", "ctx", "orders"), CASES, ids=[c[0] for c in CASES])
def test_both_builders_map_every_order_alike(name: str, ctx: MappingContext, orders: list[Any]) -> None:
    straight, general = _pair(name)
    assert len(orders) > 20
    for raw in orders:
        assert _outcome(straight, raw, ctx) == _outcome(general, raw, ctx)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves(item, (*path, key))]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, (*path, i))]
    return [path]


def _set(raw: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        raw = raw[key]
    raw[path[-1]] = value


BAD_VALUES = ["not a number", {"an": "object"}, [1, 2], True, float("inf"), "2023-13-45T99: 99: 99", None, ""]


def _with_refunds(orders: list[Any]) -> list[Any]:
    """Orders whose nested lists are filled (refunds with lines, payments, notes) come first."""
    return sorted(orders, key=lambda o: -len(json.dumps(o)))


@pytest.mark.parametrize(("name", "ctx", "orders"), CASES, ids=[c[0] for c in CASES])
def test_every_field_left_out_maps_alike_in_both_builders(
    name: str, ctx: MappingContext, orders: list[Any]
) -> None:
    """Each leaf of the fullest orders set to null in turn: defaults and required fields alike."""
    straight, general = _pair(name)
    for raw in _with_refunds(orders)[:3]:
        for path in _leaves(raw):
            broken = copy.deepcopy(raw)
            _set(broken, path, None)
            assert _outcome(straight, broken, ctx) == _outcome(general, broken, ctx), path


@pytest.mark.parametrize(("name", "ctx", "orders"), CASES, ids=[c[0] for c in CASES])
def test_broken_fields_fail_alike_in_both_builders(name: str, ctx: MappingContext, orders: list[Any]) -> None:
    """Each sampled leaf of an order set to a bad value: same canonical order or same error."""
    straight, general = _pair(name)
    rng = random.Random(13)
    errors = 0
    for raw in orders[:12]:
        leaves = _leaves(raw)
        for path in rng.sample(leaves, min(40, len(leaves))):
            broken = copy.deepcopy(raw)
            _set(broken, path, rng.choice(BAD_VALUES))
            outcome = _outcome(straight, broken, ctx)
            assert outcome == _outcome(general, broken, ctx), path
            errors += isinstance(outcome, tuple)
    assert errors > 10  # the sample did break orders, so the error path was compared too


def test_a_record_that_is_not_an_object_fails_alike() -> None:
    straight, general = _pair("webcommander")
    for raw in (None, [], "order", 12):
        assert _outcome(straight, raw, WC) == _outcome(general, raw, WC)


def test_cached_conversions_keep_types_apart() -> None:
    """1, 1.0 and True are equal as dict keys; their conversions are not the same."""
    assert str(to_decimal(1.0, WC)) == "1.0" and str(to_decimal(1, WC)) == "1"
    assert str(to_decimal(1, WC)) == "1" and str(to_decimal(1.0, WC)) == "1.0"
    with pytest.raises(ValueError):
        to_decimal(True, WC)
    with pytest.raises(ValueError):
        to_money(True, WC)
    assert str(to_money("2.345", WC)) == "2.35" and str(to_money(2.345, WC)) == "2.35"
    jpy = MappingContext(
        platform=Platform.WOOCOMMERCE, shop="jp", timezone=ZoneInfo("Asia/Tokyo"), currency="JPY"
    )
    assert str(to_money("2.5", jpy)) == "3" and str(to_money("2.5", WC)) == "2.50"
    with pytest.raises(ValueError):
        to_money(float("nan"), WC)
