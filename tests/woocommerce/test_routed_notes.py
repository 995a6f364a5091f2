"""Which WooCommerce notes are messages to route and which are the shop's own bookkeeping, decided by
what WooCommerce itself writes: every note posted through the API says "WooCommerce" as its author,
so an integration's message looks like a system note by author alone."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from ordersync.config import WooCommerceShop
from ordersync.writeback.observe import DEFAULT_NOTES, note_filter
from tests.woocommerce.conftest import recorded

routed_comment = DEFAULT_NOTES.routed


def recorded_notes() -> list[dict[str, Any]]:
    notes: list[dict[str, Any]] = []
    for interaction in recorded("v3_refunds_notes.yaml"):
        if "/notes" in interaction["request"]["uri"] and interaction["request"]["method"] == "GET":
            body = json.loads(interaction["response"]["body"]["string"])
            notes += [n for n in body if isinstance(n, dict) and "note" in n]
    return notes


def test_recorded_notes_split_into_woocommerces_own_and_messages() -> None:
    notes = recorded_notes()
    assert notes and all(n["author"] == "WooCommerce" for n in notes)  # all posted by the system or API
    routed = {n["note"] for n in notes if routed_comment("woocommerce", n["author"], n["note"])}
    kept = {n["note"] for n in notes} - routed
    # What other integrations posted through the REST API on the real shop is routed:
    assert "Your parcel is on its way." in routed
    assert any(text.startswith("Internal note for order") for text in routed)
    # WooCommerce's own bookkeeping never is:
    assert kept and all(
        text.startswith(("Email ", "Order status changed", "Stock levels", "Item #")) for text in kept
    ), kept
    assert not routed & {t for t in kept}


def test_woocommerce_texts_that_are_never_routed_and_people_who_always_are() -> None:
    own = [
        "Order status changed from Pending payment to Processing.",
        "Stripe charge complete. Order status changed from Pending payment to Processing.",
        "Order status set to refunded. To return funds to the customer you will need to issue a refund.",
        'Email "Refunded order" sent.',
        "Stock levels reduced: Milk Frother (4&rarr;3)",
        "Item #14 stock increased from 3 to 4.",
        "Order details sent to erika@example.com, via REST API.",
        "Unpaid order cancelled - time limit reached.",
    ]
    for text in own:
        assert not routed_comment("woocommerce", "WooCommerce", text), text
        assert not routed_comment("woocommerce", None, text), text  # the legacy API names no author
    assert routed_comment("woocommerce", "WooCommerce", "Private: packed by warehouse team B.")
    assert routed_comment("woocommerce", "Kim", "Please call before delivery")
    # WooCommerce writes a status changed by hand or by bulk edit under the admin's name.
    assert not routed_comment(
        "woocommerce",
        "Kim",
        "Order status changed by bulk edit: Order status changed from Processing to Completed.",
    )
    assert not routed_comment("woocommerce", "Kim", "Unable to reduce stock for item Mug.")
    assert routed_comment("woocommerce", "WooCommerce", "Refunded 5 EUR for the late parcel")  # a message
    assert routed_comment("webcommander", None, "Order status changed from A to B.")


def _shop(**fields: object) -> WooCommerceShop:
    return WooCommerceShop.model_validate(
        {"name": "w", "platform": "woocommerce", "base_url": "https://shop.example", "consumer_key": "ck",
         "consumer_secret": "cs", **fields}
    )  # fmt: skip


def test_a_shop_in_another_language_names_its_own_notes_or_routes_people_only() -> None:
    german = note_filter(
        _shop(own_notes=[r"^Bestellstatus von .+ auf .+ geändert\.", r"^E-Mail .+ gesendet"])
    )
    assert not german.routed(
        "woocommerce", "WooCommerce", "Bestellstatus von Ausstehend auf In Bearbeitung geändert."
    )
    assert not german.routed("woocommerce", "WooCommerce", 'E-Mail "Neue Bestellung" gesendet.')
    assert german.routed("woocommerce", "WooCommerce", "Bitte vor der Lieferung anrufen")
    people_only = note_filter(_shop(route_api_notes=False))
    assert not people_only.routed("woocommerce", "WooCommerce", "CRM: customer asked for gift wrap")
    assert people_only.routed("woocommerce", "Kim", "CRM: customer asked for gift wrap")


def test_a_pattern_that_is_not_a_regular_expression_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="own_notes: '\\(' is not a regular expression"):
        _shop(own_notes=["("])
