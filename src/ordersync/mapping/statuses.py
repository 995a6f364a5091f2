"""The write-side status tables (``mappings/statuses.yaml``): canonical status -> a platform's value."""

from __future__ import annotations

from functools import cache
from typing import Literal

import yaml

from ordersync.mapping.errors import MappingSpecError

Field = Literal["order_status", "payment_status"]


@cache
def _tables() -> dict[str, dict[str, dict[str, str]]]:
    from ordersync.mapping import mappings_dir

    path = mappings_dir() / "statuses.yaml"
    data = yaml.safe_load(path.read_text("utf-8"))
    if not isinstance(data, dict):
        raise MappingSpecError(f"{path}: expected a mapping of status tables")
    return data


def platform_value(field: Field, platform: str, canonical: str) -> str | None:
    """The platform's own value for a canonical status, or None when it has none."""
    table = _tables().get(field, {}).get(platform, {})
    value = table.get(canonical)
    return str(value) if value is not None else None


def writable(field: Field, platform: str) -> dict[str, str]:
    """Every canonical status the platform can be given, with its value there."""
    return {str(k): str(v) for k, v in _tables().get(field, {}).get(platform, {}).items()}
