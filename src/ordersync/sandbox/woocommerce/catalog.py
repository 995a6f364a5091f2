"""What the sandbox shop sells and how it taxes: the recorded shop's products, rates and coupons.

The figures come from the WooCommerce 11.0.1 shop the cassettes were recorded on (see
``tests/data/woocommerce/cassettes/README.md``), so generated orders look like the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Product:
    id: int
    sku: str
    name: str
    price: Decimal
    tax_class: str = ""
    parent_id: int = 0
    """For a variation, the variable product's id: wc/v3 gives it as product_id, this id as variation_id."""
    parent_name: str | None = None
    attributes: tuple[tuple[str, str, str], ...] = ()
    """(key, label, value) pairs, e.g. ("size", "Size", "S")."""
    virtual: bool = False


@dataclass(frozen=True)
class TaxRate:
    id: int
    country: str
    tax_class: str
    percent: Decimal
    label: str
    code: str
    shipping: bool


@dataclass(frozen=True)
class Coupon:
    code: str
    kind: str  # percent | fixed_cart | fixed_product
    amount: Decimal
    product_sku: str | None = None


PRODUCTS: tuple[Product, ...] = (
    Product(11, "SKU-001", "Espresso Beans 1kg", Decimal("24.90")),
    Product(12, "SKU-002", "Filter Coffee 500g", Decimal("11.50")),
    Product(13, "SKU-003", "Ceramic Mug", Decimal("9.99")),
    Product(14, "SKU-004", "Milk Frother", Decimal("39.00")),
    Product(15, "SKU-005", "Cookbook: Coffee", Decimal("19.95"), "reduced-rate"),
    Product(16, "SKU-006", "Green Tea 100g", Decimal("7.25"), "reduced-rate"),
    Product(17, "SKU-007", "Grinder Pro", Decimal("149.00")),
    Product(18, "SKU-008", "Gift Card Sleeve", Decimal("0.50"), "zero-rate"),
    Product(19, "SKU-EBOOK", "E-Book: Latte Art", Decimal("4.99"), virtual=True),
    Product(
        21,
        "TSHIRT-S",
        "T-Shirt - S",
        Decimal("15.00"),
        parent_id=20,
        parent_name="T-Shirt",
        attributes=(("size", "Size", "S"),),
    ),
    Product(
        22,
        "TSHIRT-M",
        "T-Shirt - M",
        Decimal("15.00"),
        parent_id=20,
        parent_name="T-Shirt",
        attributes=(("size", "Size", "M"),),
    ),
    Product(
        23,
        "TSHIRT-L",
        "T-Shirt - L",
        Decimal("17.00"),
        parent_id=20,
        parent_name="T-Shirt",
        attributes=(("size", "Size", "L"),),
    ),
)
BY_ID = {p.id: p for p in PRODUCTS}
BY_SKU = {p.sku: p for p in PRODUCTS}
VARIABLE_PARENTS = {20: "T-Shirt"}

TAX_RATES: tuple[TaxRate, ...] = (
    TaxRate(1, "DE", "", Decimal(19), "MwSt", "DE-MWST-1", shipping=True),
    TaxRate(2, "DE", "reduced-rate", Decimal(7), "MwSt ermaessigt", "DE-MWST ERMAESSIGT-1", shipping=False),
    TaxRate(3, "AT", "", Decimal(20), "USt", "AT-UST-1", shipping=True),
    TaxRate(4, "FR", "", Decimal(20), "TVA", "FR-TVA-1", shipping=True),
)
RATES = {r.id: r for r in TAX_RATES}
TAX_CLASSES = ("", "reduced-rate", "zero-rate")
"""The shop's tax classes in its own order, standard first (what shipping's class is chosen by)."""

COUPONS: dict[str, Coupon] = {
    "tenoff": Coupon("tenoff", "percent", Decimal(10)),
    "five": Coupon("five", "fixed_cart", Decimal(5)),
    "mug2": Coupon("mug2", "fixed_product", Decimal(2), product_sku="SKU-003"),
}

SHIPPING_METHODS = (
    ("flat_rate", "Flat rate", Decimal("4.90")),
    ("flat_rate", "Flat rate", Decimal("5.90")),
    ("free_shipping", "Free shipping", Decimal("0.00")),
)
GATEWAYS = {"bacs": "Direct bank transfer", "cheque": "Check payments", "cod": "Cash on delivery"}

STATUS_LABELS: dict[str, str] = {
    "pending": "Pending payment",
    "processing": "Processing",
    "on-hold": "On hold",
    "completed": "Completed",
    "cancelled": "Cancelled",
    "refunded": "Refunded",
    "failed": "Failed",
    "checkout-draft": "Draft",
}
CUSTOM_STATUSES: dict[str, str] = {"shipped": "Shipped"}
"""A status registered by a plugin, as real shops have: listed, filterable, not in the core tables."""
PAID_STATUSES = ("processing", "completed")


def rates_for(country: str, tax_class: str) -> list[TaxRate]:
    if tax_class == "zero-rate":
        return []
    return [r for r in TAX_RATES if r.country == country and r.tax_class == tax_class]


def shipping_rates_for(country: str, tax_class: str | None) -> list[TaxRate]:
    if tax_class is None:
        return []
    return [r for r in rates_for(country, tax_class) if r.shipping]
