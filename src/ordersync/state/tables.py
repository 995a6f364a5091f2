"""The state tables: what a run must remember between runs and across a crash.

Kept apart from the DuckDB mirror on purpose: the mirror is for analysts and may be rebuilt; this is
the connector's own memory (where each stream stopped, which order is which in the other shop, what
is still to be written, what could not be read), and it is changed only through migrations.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

cursors = Table(
    "cursors",
    metadata,
    Column("shop", String(200), primary_key=True),
    Column("stream", String(100), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    comment="Where each (shop, stream) stopped; moved only after the mirror holds what it covers.",
)

links = Table(
    "links",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source_shop", String(200), nullable=False),
    Column("source_order_id", String(100), nullable=False),
    Column("target_shop", String(200), nullable=False),
    Column("target_order_id", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column(
        "total_difference",
        Numeric(18, 4),
        comment="a replica's total minus its source's when it was made (the target's own tax rules); "
        "NULL when they were equal or the link is not a replica",
    ),
    UniqueConstraint("source_shop", "source_order_id", "target_shop"),
    Index("ix_links_target", "target_shop", "target_order_id"),
    comment="The same order in two shops, for replication and echo suppression.",
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("shop", String(200), nullable=False),
    Column("kind", String(50), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(20), nullable=False),
    Column("fetched", Integer, nullable=False, default=0),
    Column("loaded", Integer, nullable=False, default=0),
    Column("unchanged", Integer, nullable=False, default=0),
    Column("quarantined", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("details", JSON, comment="what else the run measured: requests, pages, notes re-read"),
    Index("ix_runs_shop_started", "shop", "started_at"),
    comment="One row per backfill, sync or daemon run: when, what came of it, and why it failed.",
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("platform", String(50), nullable=False),
    Column("shop", String(200), nullable=False),
    Column("record_id", String(100)),
    Column("path", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("source_url", Text),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    UniqueConstraint("platform", "shop", "content_hash"),
    Index("ix_quarantine_record", "shop", "record_id"),
    comment="Records that could not be mapped, with the raw payload, until a mapping fix reads them.",
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("shop", String(200), nullable=False),
    Column("kind", String(50), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("result", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("done_at", DateTime(timezone=True)),
    Column("order_id", String(100), comment="the target order (none for a replication)"),
    Column("origin", String(20), comment="route or manual"),
    Column("source_shop", String(200)),
    Column("source_order_id", String(100)),
    Column("changed_at", DateTime(timezone=True), comment="when the source change happened"),
    Column("sent_at", DateTime(timezone=True), comment="set before a send: it may have taken effect"),
    Column("baseline", JSON, comment="the target's ids before the send, to recognise its effect"),
    Column("lease_until", DateTime(timezone=True), comment="a worker holds it until then"),
    Column("claimed_by", JSON, comment="pid and host of that worker"),
    Index("ix_outbox_status_next", "status", "next_attempt_at"),
    Index("ix_outbox_target", "shop", "order_id"),
    comment="Writes to a shop, each once: pending until done, failed ones kept with their error.",
)

order_versions = Table(
    "order_versions",
    metadata,
    Column("platform", String(50), primary_key=True),
    Column("shop", String(200), primary_key=True),
    Column("order_id", String(100), primary_key=True),
    Column(
        "content_hash", String(64), nullable=False, comment="the order as last mapped: unchanged, skipped"
    ),
    Column(
        "seq", BigInteger, nullable=False, comment="the shop's batch that last changed it: the feed's order"
    ),
    Column("status", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True)),
    Column(
        "facts",
        Text,
        nullable=False,
        comment="JSON: number, payment status, currency and the ids (and texts) of comments, refunds and "
        "payments, which routing and the notes refresh read",
    ),
    Index("ix_order_versions_feed", "shop", "seq"),
    comment="Each order's latest mapped version: what a sync skips as unchanged, the change feed routing "
    "consumes (by seq) and the notes refresh plans from. The mirror is a projection of it.",
)

tracked = Table(
    "tracked_orders",
    metadata,
    Column("shop", String(200), primary_key=True),
    Column("order_id", String(100), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    comment="What a linked order looked like when last routed, and the effects ordersync wrote into it "
    "that its next extraction will show (so they are not echoed back).",
)

conflicts = Table(
    "conflicts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("field", String(50), nullable=False),
    Column("shop_a", String(200), nullable=False),
    Column("order_a", String(100), nullable=False),
    Column("value_a", Text),
    Column("changed_a", DateTime(timezone=True)),
    Column("shop_b", String(200), nullable=False),
    Column("order_b", String(100), nullable=False),
    Column("value_b", Text),
    Column("changed_b", DateTime(timezone=True)),
    Column("policy", String(200), nullable=False),
    Column("winner_shop", String(200), nullable=False),
    Column("outcome", Text, nullable=False),
    Column("detected_at", DateTime(timezone=True), nullable=False),
    comment="Both shops changed the same field of a linked order: who won, by which policy.",
)

shop_leases = Table(
    "shop_leases",
    metadata,
    Column("shop", String(200), primary_key=True),
    Column("holder", String(64), nullable=False, comment="one run's own token"),
    Column("pid", Integer, nullable=False),
    Column("host", String(255), nullable=False),
    Column("kind", String(50), nullable=False, comment="backfill, sync, ..."),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    comment="Which process runs each shop now: one run per shop at a time, across processes and hosts. "
    "Renewed while the run goes on; taken over once it expires or its process is gone.",
)

shop_schedules = Table(
    "shop_schedules",
    metadata,
    Column("shop", String(200), primary_key=True),
    Column("next_due", DateTime(timezone=True), nullable=False, comment="no firing before this"),
    Column("claimed_by", String(300), nullable=False, comment="the daemon that took the last firing"),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    comment="The cluster's schedule per shop: each daemon fires on its own clock, and the one whose "
    "conditional update moves next_due on runs that firing; the others skip it.",
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("shop", String(200), nullable=False),
    Column("delivery_id", String(200), nullable=False, comment="X-WC-Webhook-Delivery-ID"),
    Column("body_sha256", String(64), nullable=False, comment="the body's hash; never the body"),
    Column("webhook_id", String(50)),
    Column("topic", String(100), nullable=False),
    Column("order_id", String(100)),
    Column("modified", String(50), comment="the order's date_modified_gmt as sent"),
    Column("outcome", String(20), nullable=False, comment="queued, duplicate, seen or ignored"),
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("shop", "delivery_id", "body_sha256"),
    Index("ix_webhook_deliveries_order", "shop", "order_id", "modified"),
    comment="Verified WooCommerce webhook deliveries: a delivery id and body seen before, or an order "
    "version (id, date_modified) already queued, changes nothing.",
)

webhook_secrets = Table(
    "webhook_secrets",
    metadata,
    Column("shop", String(200), primary_key=True),
    Column("secret", Text, nullable=False, comment="verifies deliveries; never printed or logged"),
    Column("delivery_url", Text, nullable=False),
    Column("installed_at", DateTime(timezone=True), nullable=False),
    Column("shop_status", String(50), comment="WooCommerce's status of the webhooks"),
    Column("checked_at", DateTime(timezone=True)),
    comment="The webhooks `ordersync webhooks install` registered per shop: the secret deliveries are "
    "verified with (unless the config gives one) and what WooCommerce last said of them.",
)
