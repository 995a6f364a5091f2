"""Declarative mapping of raw platform payloads into canonical orders (``mappings/*.yaml``)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from ordersync.mapping.context import MappingContext, minor_units
from ordersync.mapping.engine import OrderMapper, load_mapping_file
from ordersync.mapping.errors import MappingError, MappingSpecError

__all__ = [
    "MappingContext",
    "MappingError",
    "MappingSpecError",
    "OrderMapper",
    "load_mapping",
    "mappings_dir",
    "minor_units",
]


def mappings_dir() -> Path:
    """The packaged copy in an installed wheel, else the repository's top-level ``mappings/``."""
    packaged = resources.files("ordersync").joinpath("_mappings")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / "mappings"


@cache
def load_mapping(name: str) -> OrderMapper:
    path = mappings_dir() / f"{name}.yaml"
    if not path.exists():
        raise MappingSpecError(f"no mapping named {name!r} (looked for {path})")
    return load_mapping_file(path)
