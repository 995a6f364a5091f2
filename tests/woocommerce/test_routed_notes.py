"""Which WooCommerce notes are messages to route and which are the shop's own bookkeeping, decided by
what WooCommerce itself writes: every note posted through the API says "WooCommerce" as its author,
so an integration's message looks like a system note by author alone."""

from __future__ import annotations

import json
from typing import Any

from ordersync.writeback.observe import routed_comment
from tests.woocommerce.conftest import recorded


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
    assert routed_comment("woocommerce", "Kim", "Order status changed from A to B.")  # a person wrote it
    assert routed_comment("webcommander", None, "Order status changed from A to B.")
