"""A module imported at its first attribute: the CLI names what it needs without loading it, so
``ordersync --help`` stays fast (pydantic, SQLAlchemy, DuckDB and asyncio load only when used)."""

from __future__ import annotations

import importlib
from typing import Any


class Lazy:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)
