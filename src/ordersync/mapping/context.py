"""What a mapping needs to know about the shop that a payload does not say."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from ordersync.models import Platform

# ISO 4217 minor units where they are not 2.
_MINOR_UNITS = {
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
}


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency.upper(), 2)


@dataclass(frozen=True)
class MappingContext:
    platform: Platform
    shop: str
    timezone: ZoneInfo
    currency: str
    country_codes: Mapping[str, str] = field(default_factory=dict)
    """The shop's country id -> ISO 3166-1 alpha-2 code, for payloads that give only the id
    (WebCommander): the config's ``country_ids`` read backwards."""
    state_codes: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """The shop's state id -> (country code, state code), from the config's ``state_ids``."""
    quantum: Decimal = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantum", Decimal(1).scaleb(-minor_units(self.currency)))

    @property
    def lookup_version(self) -> str:
        """What the lookups add to the mapping's version: a new country list re-maps the orders."""
        if not self.country_codes and not self.state_codes:
            return ""
        return repr((sorted(self.country_codes.items()), sorted(self.state_codes.items())))
