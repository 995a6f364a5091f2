"""A record that cannot be mapped: where in the raw payload, and why."""

from __future__ import annotations

from typing import Any


class MappingError(Exception):
    """Quarantines one record; never stops a run. ``path`` names the raw field, e.g. ``items[3].price``."""

    def __init__(self, path: str, reason: str, value: Any = None):
        self.path = path
        self.reason = reason
        self.value = value
        super().__init__(f"{path}: {reason}")


class MappingSpecError(Exception):
    """The mapping file itself is wrong: raised at load time, naming the file and key."""
