"""The columnar path (canonical dicts to Arrow, checked a column at a time) gives exactly the tables the
model path (pydantic, then rows from the models) gives, and never accepts what pydantic refuses.

The same inputs as the builder tests: document examples, recorded WooCommerce orders (v3 and v2),
generated sandbox orders, and those orders broken leaf by leaf.
"""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pytest

from ordersync.mapping import MappingContext, MappingError, load_mapping
from ordersync.mirror.batch import LoadedOrder, order_tables
from ordersync.mirror.columnar import Mapped, NotCanonical, dict_tables
from ordersync.models import Platform
from ordersync.sync.pagework import PageJob, map_page
from tests.mapping.test_straight_line import BAD_VALUES, CASES, WC, _leaves, _set

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _reference(name: str, raws: list[Any], ctx: MappingContext) -> dict[str, pa.Table] | str:
    mapper = load_mapping(name)
    loaded = []
    try:
        for at, raw in enumerate(raws):
            order = mapper.map(raw, ctx)
            loaded.append(
                LoadedOrder(order, orjson.dumps(raw), f"h{at}", "u", b'{"n":1}' if at % 2 else None)
            )
    except MappingError as exc:
        return f"{exc.path}: {exc.reason}"
    return order_tables(loaded, NOW)


def _columnar(name: str, raws: list[Any], ctx: MappingContext) -> dict[str, pa.Table] | None:
    mapper = load_mapping(name)
    items = [
        Mapped(mapper.build(raw, ctx), orjson.dumps(raw), f"h{at}", "u", b'{"n":1}' if at % 2 else None)
        for at, raw in enumerate(raws)
    ]
    try:
        return dict_tables(items, NOW)
    except NotCanonical:
        return None


def _assert_same(expected: dict[str, pa.Table], got: dict[str, pa.Table], where: Any) -> None:
    assert set(got) == set(expected)
    for table, data in expected.items():
        assert got[table].schema == data.schema, (where, table)
        assert got[table].to_pylist() == data.to_pylist(), (where, table)


@pytest.mark.parametrize(("name", "ctx", "orders"), CASES, ids=[c[0] for c in CASES])
def test_every_order_gives_the_same_tables_on_both_paths(
    name: str, ctx: MappingContext, orders: list[Any]
) -> None:
    expected = _reference(name, orders, ctx)
    assert isinstance(expected, dict)
    got = _columnar(name, orders, ctx)
    assert got is not None, "a valid page must not need the model path"
    _assert_same(expected, got, name)
    # The lists the columnar path walks were filled: line items, and at least one nested list.
    assert expected["line_items"].num_rows > len(orders)
    assert sum(expected[t].num_rows for t in ("refunds", "payments", "comments", "tax_lines")) > 0


@pytest.mark.parametrize(("name", "ctx", "orders"), CASES, ids=[c[0] for c in CASES])
def test_a_broken_order_is_refused_or_read_exactly_as_the_model_reads_it(
    name: str, ctx: MappingContext, orders: list[Any]
) -> None:
    """Leaves set to null or to a bad value: whatever the mapping builds, the columnar path either
    gives the model path's tables or hands the order to the model path; never a different reading."""
    rng = random.Random(29)
    refused = accepted = 0
    for raw in orders[:10]:
        leaves = _leaves(raw)
        for path in rng.sample(leaves, min(30, len(leaves))):
            broken = copy.deepcopy(raw)
            _set(broken, path, rng.choice([*BAD_VALUES, None]))
            try:
                load_mapping(name).build(copy.deepcopy(broken), ctx)
            except MappingError:
                continue  # refused while mapping, on both paths alike
            expected = _reference(name, [broken], ctx)
            got = _columnar(name, [broken], ctx)
            if isinstance(expected, str):
                assert got is None, (path, expected)
                refused += 1
            elif got is not None:
                _assert_same(expected, got, path)
                accepted += 1
    assert accepted > 20


def _built_webcommander() -> tuple[dict[str, Any], Any]:
    name, ctx, orders = CASES[0]
    raw = max(orders, key=lambda o: len(orjson.dumps(o)))
    return load_mapping(name).build(raw, ctx), raw


BREAKS = {
    "an id past 255 characters": lambda d: d.update(external_id="9" * 256),
    "a status outside the enum": lambda d: d.update(status="half-done"),
    "a currency of two letters": lambda d: d.update(currency="EU"),
    "a required total left out": lambda d: d.pop("total"),
    "a required total as None": lambda d: d.update(total=None),
    "a total as a float": lambda d: d.update(total=1.5),
    "a total that is NaN": lambda d: d.update(total=Decimal("NaN")),
    "a naive creation time": lambda d: d.update(created_at=datetime(2024, 1, 1)),
    "a time given as text": lambda d: d.update(paid_at="2024-01-01T00:00:00Z"),
    "a field the model lacks": lambda d: d.update(colour="red"),
    "a line field the model lacks": lambda d: d["line_items"][0].update(colour="red"),
    "a line's quantity as text": lambda d: d["line_items"][0].update(quantity="2"),
    "a line name past 1024 characters": lambda d: d["line_items"][0].update(name="n" * 1025),
    "a line that is not an object": lambda d: d["line_items"].append("line"),
    "a comment without text": lambda d: d["comments"].append({"text": None}),
    "a shipment with a numeric item id": lambda d: d["shipments"].append({"item_ids": [5]}),
    "a refund line of an unknown kind": lambda d: d["refunds"].append(
        {"amount": Decimal(1), "lines": [{"kind": "gift"}]}
    ),
    "an address field past its length": lambda d: d["billing"].update(postcode="1" * 256),
    "a boolean as an integer": lambda d: d["line_items"][0].update(taxable=1),
    "a tax amount as an int in JSON": lambda d: d["line_items"][0].update(
        taxes=[{"rate_id": "1", "total": 1}]
    ),
}


@pytest.mark.parametrize("label", list(BREAKS))
def test_what_the_model_would_refuse_or_change_goes_to_the_model_path(label: str) -> None:
    data, raw = _built_webcommander()
    BREAKS[label](data)
    with pytest.raises(NotCanonical):
        dict_tables([Mapped(data, orjson.dumps(raw), "h", "u")], NOW)


def test_a_page_with_one_bad_order_quarantines_it_and_mirrors_the_rest() -> None:
    """The model path takes over for the whole job and names the field, as before the columnar path."""
    name, ctx, orders = CASES[0]
    page = copy.deepcopy(orders[:8])
    page[3]["customerName"] = "x" * 2000
    body = orjson.dumps({"orders": page})
    result = map_page(
        PageJob(
            body=body,
            source_url="u",
            platform=Platform.WEBCOMMANDER,
            shop=ctx.shop,
            timezone=str(ctx.timezone),
            currency=ctx.currency,
            mapping=name,
        )
    )
    assert len(result.quarantined) == 1, result.quarantined
    record_id, path, reason = result.quarantined[0]
    assert record_id == str(page[3]["id"]) and "customer_name" in path, (path, reason)
    assert result.tables["orders"].num_rows == 7
    good = _columnar(name, page[:3] + page[4:], WC)
    assert good is not None
    assert (
        result.tables["orders"].column("order_id").to_pylist()
        == good["orders"].column("order_id").to_pylist()
    )
