"""The config file, validated whole before any request is sent.

Secrets may be written inline or as ``${ENV_VAR}`` (``${ENV_VAR:-default}`` too); they are held
as ``SecretStr`` so a printed config,
a log line or a validation error never shows them. Unknown keys are errors: a typo must not silently
fall back to a default.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ordersync.errors import ConfigError

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

    from ordersync.mirror.store import Mirror
    from ordersync.state.store import StateStore

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpSettings(_Strict):
    """The one HTTP policy every platform client uses."""

    timeout: float = Field(30.0, gt=0, description="seconds for a whole request")
    connect_timeout: float = Field(10.0, gt=0)
    retry_for: float = Field(
        300.0,
        ge=0,
        description="seconds one read keeps retrying a failing shop: long enough to ride out a restart",
    )
    first_contact_for: float = Field(
        30.0,
        ge=0,
        description="seconds to retry a shop that has not answered once in this run (a wrong host or "
        "port, a DNS typo fails fast); once it has answered, retry_for applies",
    )
    max_retries: int | None = Field(
        None, ge=0, le=1000, description="a cap on tries as well as time; none: retry_for alone decides"
    )
    backoff_base: float = Field(0.5, ge=0, description="first retry delay in seconds, doubled each time")
    backoff_max: float = Field(30.0, ge=0, description="the longest pause between two tries")
    max_retry_after: float = Field(120.0, ge=0, description="longest Retry-After we agree to wait")
    resumes: int = Field(
        2,
        ge=0,
        le=100,
        description="times a backfill that lost its shop for longer than retry_for waits and resumes "
        "from its own checkpoint by itself before it fails",
    )


class Schedule(_Strict):
    """When the daemon syncs a shop: every ``interval`` seconds, or on a crontab line (UTC)."""

    interval: float | None = Field(None, gt=0, description="seconds between the starts of two runs")
    cron: str | None = Field(None, description="crontab expression, e.g. '*/5 * * * *' (UTC)")

    @model_validator(mode="after")
    def _one(self) -> Schedule:
        if (self.interval is None) == (self.cron is None):
            raise ValueError("give exactly one of interval (seconds) or cron")
        if self.cron is not None:
            try:
                self.cron_trigger()
            except ValueError as exc:
                raise ValueError(f"cron {self.cron!r} is not a crontab line: {exc}") from None
        return self

    def cron_trigger(self) -> CronTrigger:
        """The cron line as APScheduler reads it, in UTC (a schedule with ``cron``)."""
        from apscheduler.triggers.cron import CronTrigger

        return CronTrigger.from_crontab(self.cron, timezone="UTC")  # type: ignore[arg-type]

    def until_next(self, now: datetime) -> float:
        """Seconds from ``now`` (a firing) to the next one: what a claim of this firing covers. For a
        cron line with uneven gaps (09:00 and 17:00) this is the gap that follows, not the next one."""
        if self.interval is not None:
            return self.interval
        following = self.cron_trigger().get_next_fire_time(None, now + timedelta(seconds=1))
        return (following - now).total_seconds() if following else 86_400.0

    def period(self, now: datetime) -> float:
        """Seconds between two runs: the interval, or the gap between the cron line's next two fires."""
        if self.interval is not None:
            return self.interval
        trigger = self.cron_trigger()
        first = trigger.get_next_fire_time(None, now)
        second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
        return (second - first).total_seconds() if first and second else 86_400.0


class _ShopBase(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    base_url: str
    timezone: str = "UTC"
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    page_size: int = Field(100, ge=1, le=1000)
    concurrency: int = Field(4, ge=1, le=32, description="pages fetched at once")
    schedule: Schedule = Schedule(interval=300)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name such as Europe/Berlin)") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def country_codes(self) -> dict[str, str]:
        """Country id -> ISO code, for a platform whose orders may name a country by id only."""
        return {}

    @property
    def state_codes(self) -> dict[str, tuple[str, str]]:
        return {}


class WebCommanderAdminApi(_Strict):
    """WebCommander's v4 admin API (send-invoice, comments with visibility, cancel): OAuth2 client
    credentials, a token from ``POST {base_url}/api/v4/oauth2/token``."""

    base_url: str = Field(description="e.g. https://wcapi.mywebcommander.com")
    client_id: SecretStr
    client_secret: SecretStr

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class WebCommanderShop(_ShopBase):
    platform: Literal["webcommander"]
    uuid: SecretStr
    access_token: SecretStr
    admin_api: WebCommanderAdminApi | None = Field(
        None, description="v4 admin API credentials; needed for invoices, customer-visible comments, cancel"
    )
    country_ids: dict[str, int] = Field(
        default_factory=dict,
        description="ISO country code -> WebCommander country id, for orders created here",
    )
    state_ids: dict[str, int] = Field(
        default_factory=dict, description="'AU-VIC' (country-state code) -> WebCommander state id"
    )
    payment_gateway: str = Field("PIS", description="gateway code for payments recorded without one")

    @property
    def country_codes(self) -> dict[str, str]:
        """Country id -> ISO code: orders that give a bare id get their country_code from it."""
        return {str(ident): code.upper() for code, ident in self.country_ids.items()}

    @property
    def state_codes(self) -> dict[str, tuple[str, str]]:
        """State id -> (country code, state code), from keys such as 'AU-VIC'."""
        pairs = {str(ident): key.partition("-") for key, ident in self.state_ids.items()}
        return {ident: (c.upper(), s) for ident, (c, _, s) in pairs.items() if s}

    scan_passes: int = Field(
        3, ge=1, le=10, description="passes over the listing to reach one that proves it complete"
    )
    idempotency_keys: bool = Field(
        False,
        description="the shop replays a repeated Idempotency-Key (the documents do not say so): a write "
        "whose answer was lost and that leaves no trace (an invoice) may then be sent again",
    )


class WooCommerceShop(_ShopBase):
    """A WooCommerce shop through REST v3 (``wp-json/wc/v3``) or the legacy API v2 (``wc-api/v2``).

    ``auth: auto`` does what WooCommerce accepts: HTTP Basic over HTTPS, OAuth 1.0a over plain HTTP.
    ``query`` sends the key and secret as query parameters over HTTPS, for hosts that strip the
    Authorization header. Orders carry their currency; ``currency`` here sets the rounding precision.
    """

    platform: Literal["woocommerce"]
    api_version: Literal["v3", "v2"] = "v3"
    consumer_key: SecretStr
    consumer_secret: SecretStr
    auth: Literal["auto", "basic", "query", "oauth1"] = "auto"
    signature_method: Literal["HMAC-SHA256", "HMAC-SHA1"] = "HMAC-SHA256"
    verify_tls: bool | str = Field(True, description="false, or a CA bundle path for a self-signed shop")
    page_size: int = Field(100, ge=1, le=100, description="per_page / filter[limit]; WooCommerce allows 100")
    statuses: list[str] = Field(default_factory=lambda: ["any"], min_length=1)
    notes: Literal["all", "none"] = Field("all", description="read each order's notes into comments")
    own_notes: list[str] = Field(
        default_factory=list,
        description="regular expressions of notes this shop writes itself beyond WooCommerce's English "
        "ones (its language's texts, a plugin's bookkeeping): never routed as comments",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="the secret of this shop's WooCommerce webhooks: deliveries to "
        "/webhooks/woocommerce/<name> on ops.listen are verified with it (unset: none are accepted)",
    )

    @field_validator("webhook_secret")
    @classmethod
    def _secret_set(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("an empty secret would let anyone sign deliveries: leave it out instead")
        return value

    route_api_notes: bool = Field(
        True,
        description="route notes posted through the API (author 'WooCommerce') that are not "
        "WooCommerce's own texts; false: only notes a person wrote in the admin",
    )

    @field_validator("own_notes")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"own_notes: {pattern!r} is not a regular expression: {exc}") from None
        return value

    refunds: bool = Field(True, description="read refund details (lines, taxes) of refunded orders")
    detail_concurrency: int = Field(
        32, ge=1, le=64, description="refund and note requests at once at most; the run adapts below it"
    )
    sync_overlap: float = Field(
        60,
        ge=1,
        description="seconds the incremental sync re-lists before its cursor: covers orders modified "
        "in the cursor's second and a shop clock that disagrees with ours",
    )
    notes_refresh: Literal["open", "none"] = Field(
        "open",
        description="re-read notes of open orders each sync: a new note does not change an order's "
        "date_modified, so nothing else would notice it",
    )
    notes_refresh_days: int = Field(
        30, ge=0, description="orders modified this recently count as open whatever their status"
    )
    gateway_refunds: bool = Field(
        False,
        description="refunds written here go through the payment gateway (api_refund); off, they are "
        "recorded only, which is what a refund mirrored from another shop needs",
    )

    @field_validator("verify_tls")
    @classmethod
    def _ca_bundle(cls, value: bool | str) -> bool | str:
        if isinstance(value, str) and not Path(value).expanduser().is_file():
            raise ValueError(f"no CA bundle file at {value!r} (give a PEM file, true or false)")
        return str(Path(value).expanduser()) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _auth_fits_scheme(self) -> WooCommerceShop:
        if self.auth in ("basic", "query") and not self.secure:
            raise ValueError(
                f"auth {self.auth!r} needs an https:// base_url: WooCommerce ignores keys sent that way "
                "over plain HTTP (use auth: oauth1 there)"
            )
        return self

    @property
    def secure(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def auth_mode(self) -> Literal["basic", "query", "oauth1"]:
        if self.auth != "auto":
            return self.auth
        return "basic" if self.secure else "oauth1"


ShopConfig = Annotated[WebCommanderShop | WooCommerceShop, Field(discriminator="platform")]


class MirrorSettings(_Strict):
    kind: Literal["duckdb", "ducklake"] = Field(
        "duckdb",
        description="duckdb: one file, one writing process (the embedded default); ducklake: a "
        "DuckLake (a catalog plus Parquet files) that several daemons write while analysts read",
    )
    path: Path = Path("ordersync.duckdb")
    catalog: SecretStr | None = Field(
        None,
        description="ducklake only: a PostgreSQL catalog as a libpq string ('postgres:dbname=lake "
        "host=db user=ordersync password=...'); unset, the catalog is a SQLite file at `path`",
    )
    data_path: str | None = Field(
        None,
        description="ducklake only: the folder (or s3:// prefix) of the lake's Parquet files; "
        "unset, `<path>.files/` beside the catalog",
    )
    maintenance: Schedule = Field(
        Schedule(cron="30 3 * * *"),
        description="ducklake only: when the daemon merges small files, expires snapshots older than "
        "`keep_snapshots` and deletes the files no snapshot needs",
    )
    keep_snapshots: str = Field(
        "7 days",
        pattern=r"^\d+ (minute|hour|day|week)s?$",
        description="ducklake only: how far back analysts can query 'as of' a snapshot",
    )
    batch_orders: int = Field(5000, ge=1, description="orders per DuckDB write at most")
    batch_bytes: int = Field(
        6 * 1024 * 1024, ge=1, description="Arrow bytes after which a batch is written (its usual bound)"
    )
    lock_wait: float = Field(60.0, ge=0, description="seconds to wait for an analyst to release the file")
    memory_limit: str = Field(
        "32MB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$",
        description="DuckDB's memory cap during a run",
    )
    checkpoint_threshold: str = Field(
        "128MB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$",
        description="write-ahead log size that triggers a checkpoint",
    )
    threads: int = Field(1, ge=1, le=64, description="DuckDB threads for a run's writes")
    personal_data: Literal["keep", "hash", "drop"] = Field(
        "keep",
        description="keep: mirror everything; hash: e-mails and phone numbers as salted hashes, IP "
        "addresses and raw payloads left out; drop: all of those left out",
    )

    @model_validator(mode="after")
    def _lake_settings(self) -> MirrorSettings:
        if self.kind == "duckdb" and (self.catalog is not None or self.data_path is not None):
            raise ValueError("catalog and data_path are settings of a DuckLake mirror: add kind: ducklake")
        if self.catalog is not None and not self.catalog.get_secret_value().startswith("postgres:"):
            raise ValueError("catalog: a PostgreSQL catalog 'postgres:<libpq string>'; unset: SQLite at path")
        return self

    @property
    def lake_data_path(self) -> str:
        """Where the lake's Parquet files go (ending in '/', as DuckLake wants a folder)."""
        data = self.data_path or str(self.path.with_name(self.path.name + ".files"))
        return data if data.endswith("/") else data + "/"

    def preflight(self) -> None:
        """Refuse a mirror that cannot be written before any request is sent (one line, the path)."""
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not folder.is_dir():
            raise ConfigError(f"mirror.path {self.path}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"mirror.path {self.path}: the folder {folder} is not writable by this user")
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise ConfigError(f"mirror.path {self.path}: the file is read-only for this user")

    def open(self) -> Mirror:
        """The mirror with these settings (imported here: config must not pull DuckDB in)."""
        from ordersync.mirror.store import Mirror

        if self.kind == "ducklake":
            from ordersync.mirror.lake import LakeMirror

            return LakeMirror(
                self.path,
                catalog=None if self.catalog is None else self.catalog.get_secret_value(),
                data_path=self.lake_data_path,
                lock_wait=self.lock_wait,
                memory_limit=self.memory_limit,
                threads=self.threads,
                personal_data=self.personal_data,
            )
        return Mirror(
            self.path,
            lock_wait=self.lock_wait,
            memory_limit=self.memory_limit,
            checkpoint_threshold=self.checkpoint_threshold,
            threads=self.threads,
            personal_data=self.personal_data,
        )


class StateSettings(_Strict):
    """Where sync state lives: a SQLite file by default, PostgreSQL (``postgresql+psycopg://...``) in
    production. The URL may hold a password, so it is kept as a secret."""

    url: SecretStr = SecretStr("sqlite:///ordersync-state.db")
    auto_upgrade: bool = Field(
        False,
        description="migrate the store at the start of a run instead of refusing an old revision "
        "(the embedded sandbox default does; production runs `ordersync db upgrade` on purpose)",
    )

    @field_validator("url")
    @classmethod
    def _usable(cls, value: SecretStr) -> SecretStr:
        from ordersync.state.store import check_url

        check_url(value.get_secret_value())
        return value

    def open(self) -> StateStore:
        from ordersync.state.store import StateStore

        return StateStore(self.url.get_secret_value())

    def open_ready(self) -> StateStore:
        """The store, refused (``StateNotReadyError``) unless at this version's revision, or migrated
        first when ``auto_upgrade`` is set."""
        store = self.open()
        try:
            if self.auto_upgrade:
                store.upgrade()
            else:
                store.require_current()
        except Exception:
            store.dispose()
            raise
        return store


class EmbeddedSandbox(_Strict):
    """Start the sandbox shops inside the run itself, so the default job needs nothing else running."""

    enabled: bool = False
    orders: int = Field(2000, ge=0)
    seed: int = 42


ChangeKind = Literal["orders", "status", "payment_status", "comments", "refunds", "payments", "cancel"]


class Route(_Strict):
    """Which changes of one shop's orders are written into another shop.

    ``orders`` replicates new orders (created at or after ``replicate_since``, by default the first
    time the route runs) and links them; the other kinds flow only between linked orders."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str = Field(alias="from")
    target: str = Field(alias="to")
    changes: list[ChangeKind] = Field(min_length=1)
    products: dict[str, str] = Field(
        default_factory=dict, description="source SKU -> target product id, ahead of a lookup by SKU"
    )
    product_ids: dict[str, str] = Field(
        default_factory=dict,
        description="source product id (a variation's own id for a variation) -> target product id; "
        "WebCommander lines carry a product id and no SKU, so replicating from it needs this",
    )

    @field_validator("products", "product_ids", mode="before")
    @classmethod
    def _text_keys(cls, value: Any) -> Any:
        """YAML reads ``495: "12"`` with a number for a key; ids are compared as text."""
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value

    replicate_since: datetime | None = Field(None, description="aware; older orders are not replicated")

    @field_validator("replicate_since")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a timezone, e.g. 2026-01-01T00:00:00Z")
        return value


ConflictField = Literal["status", "payment_status"]


class OutboxSettings(_Strict):
    max_attempts: int = Field(
        8, ge=1, le=100, description="failed tries before an operation is dead-lettered"
    )
    backoff_base: float = Field(30.0, ge=0, description="seconds before the first retry, doubled each time")
    backoff_max: float = Field(3600.0, ge=0)
    batch: int = Field(100, ge=1, description="operations taken per drain")
    concurrency: int = Field(
        4, ge=1, le=32, description="operations applied at once (never two of one order)"
    )
    interval: float = Field(30.0, gt=0, description="`ordersync run`: seconds between outbox drains")


class SyncSettings(_Strict):
    """Write-back between shops: routes, the conflict policy per field, and the outbox."""

    routes: list[Route] = Field(default_factory=list)
    conflicts: dict[ConflictField, str] = Field(
        default_factory=dict,
        description="field -> 'latest' (the later change wins, the default) or the name of the shop "
        "that is the source of truth",
    )
    outbox: OutboxSettings = OutboxSettings()

    def policy(self, field: str) -> str:
        return self.conflicts.get(field, "latest")  # type: ignore[call-overload]


class OpsSettings(_Strict):
    """What an operator watches: the daemon's health and metrics endpoint, and when a shop is stale."""

    listen: str | None = Field(
        None,
        description="host:port where `ordersync run` serves /healthz, /readyz and /metrics (off when unset)",
    )
    webhook_max_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        description="the largest webhook body accepted (413 above it); an order with hundreds of lines "
        "is well under 1 MB",
    )
    stale_schedules: float = Field(
        3.0,
        gt=0,
        description="a shop whose last successful run began more than this many schedule periods ago "
        "is stale (`status --check` warns, /readyz fails)",
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:9108)")
        return value


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


class Settings(_Strict):
    shops: list[ShopConfig] = Field(min_length=1)
    workers: int = Field(
        default_factory=_default_workers,
        ge=0,
        le=32,
        description="processes that map pages (0: map in the main process)",
    )
    mirror: MirrorSettings = MirrorSettings()
    state: StateSettings = StateSettings()
    http: HttpSettings = HttpSettings()
    sandbox: EmbeddedSandbox = EmbeddedSandbox()
    sync: SyncSettings = SyncSettings()
    ops: OpsSettings = OpsSettings()

    @model_validator(mode="after")
    def _routes_name_shops(self) -> Settings:
        names = {shop.name for shop in self.shops}
        for n, route in enumerate(self.sync.routes):
            for end in (route.source, route.target):
                if end not in names:
                    known = ", ".join(sorted(names))
                    raise ValueError(f"sync.routes[{n}]: no shop named {end!r} (known: {known})")
            if route.source == route.target:
                raise ValueError(f"sync.routes[{n}]: from and to are the same shop {route.source!r}")
        for field, policy in self.sync.conflicts.items():
            if policy != "latest" and policy not in names:
                raise ValueError(f"sync.conflicts.{field}: {policy!r} is neither 'latest' nor a shop name")
        return self

    @field_validator("shops")
    @classmethod
    def _unique(cls, shops: list[ShopConfig]) -> list[ShopConfig]:
        seen: set[str] = set()
        for shop in shops:
            if shop.name in seen:
                raise ValueError(f"shop name {shop.name!r} is used twice")
            seen.add(shop.name)
        return shops

    def shop(self, name: str) -> ShopConfig:
        for shop in self.shops:
            if shop.name == name:
                return shop
        known = ", ".join(s.name for s in self.shops)
        raise ConfigError(f"no shop named {name!r} in the config (known: {known})")


_SECRET_FIELDS = {
    "uuid",
    "access_token",
    "consumer_key",
    "consumer_secret",
    "webhook_secret",
    "client_id",
    "client_secret",
    "url",
}
_BARE_REF = re.compile(r"^\$[A-Za-z_][A-Za-z0-9_]*$")
_UNCLOSED_REF = re.compile(r"\$\{[^}]*$")


class _PlacedError(ConfigError):
    """A config error at a place in the file, given as the path of keys to it."""

    def __init__(self, loc: tuple[Any, ...], problem: str):
        super().__init__(problem)
        self.loc, self.problem = loc, problem


def _interpolate(node: Any, loc: tuple[Any, ...] = ()) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, (*loc, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, (*loc, i)) for i, v in enumerate(node)]
    if isinstance(node, str):
        secret = bool(loc) and loc[-1] in _SECRET_FIELDS
        if secret and _BARE_REF.match(node.strip()):
            raise _PlacedError(loc, f"{node.strip()!r} is not expanded: write ${{{node.strip()[1:]}}}")
        if _UNCLOSED_REF.search(node):
            raise _PlacedError(loc, f"an unclosed ${{ in {node!r}: write ${{NAME}} or ${{NAME:-default}}")

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise _PlacedError(loc, f"environment variable {name} is not set")

        value = _ENV_REF.sub(replace, node)
        if secret and value != node and not value.strip():
            raise _PlacedError(loc, f"a secret that is empty ({node!r} gave nothing)")
        return value
    return node


def _vocabulary(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    """Every key the config knows, for suggesting the closest one to a typo."""
    import typing

    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    words = set(model.model_fields)
    for info in model.model_fields.values():
        stack = [info.annotation]
        while stack:
            kind = stack.pop()
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                words |= _vocabulary(kind, seen)
            else:
                stack.extend(typing.get_args(kind))
    return words


def _line_of(root: Any, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest YAML node on ``loc`` (parts that are no key, like a union's tag, are
    skipped)."""
    node, line = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if str(k.value) == str(part)), None)
            if found is None:
                key = next((k for k, v in node.value if str(k.value) == str(part)), None)
                if key is not None:
                    line = key.start_mark.line + 1
                continue
            node = found
        elif isinstance(node, yaml.SequenceNode) and str(part).isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
        else:
            continue
        line = node.start_mark.line + 1
    return line


def _where(loc: tuple[Any, ...], source: str, root: Any) -> str:
    dotted = ".".join(str(p) for p in loc) or "(top level)"
    line = _line_of(root, loc) if root is not None else None
    return f"{dotted} ({source} line {line})" if line else dotted


def _describe(error: ValidationError, source: str, root: Any = None) -> str:
    lines = [f"invalid config {source}:"]
    known: set[str] | None = None
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not str(p).startswith("function-"))
        message = item["msg"]
        if item["type"] == "extra_forbidden" and loc:
            import difflib

            known = known or _vocabulary(Settings)
            close = difflib.get_close_matches(str(loc[-1]), sorted(known), n=1, cutoff=0.7)
            message = "unknown key" + (f"; did you mean {close[0]!r}?" if close else "")
        # A discriminated union adds the tag to the location (shops.0.webcommander.uuid): it names
        # the platform, so it is kept.
        lines.append(f"  {_where(loc, source, root)}: {message}")
    return "\n".join(lines)


def parse_settings(data: Any, source: str = "<config>", root: Any = None) -> Settings:
    """``root``: the file's YAML node tree, so that errors give lines."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {source}: the top level must be a mapping of keys")
    try:
        return Settings.model_validate(_interpolate(data))
    except _PlacedError as exc:
        raise ConfigError(
            f"invalid config {source}:\n  {_where(exc.loc, source, root)}: {exc.problem}"
        ) from None
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, root)) from None


CONFIG_ENV = "ORDERSYNC_CONFIG"
"""Where the config is when ``--config`` is not given (a container or a unit sets it once)."""


def config_path(given: Path | None) -> Path | None:
    """``--config``, else ``ORDERSYNC_CONFIG``, else None: the embedded demo."""
    if given is not None:
        return given
    from_env = os.environ.get(CONFIG_ENV, "").strip()
    return Path(from_env) if from_env else None


def load_settings(path: Path | None) -> Settings:
    """Read a config file, or the embedded default (sandbox shops, local files) when none is given."""
    if path is None:
        text = resources.files("ordersync").joinpath("default_config.yaml").read_text("utf-8")
        source = "(embedded default)"
    else:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        source = str(path)
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config {source} is not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    settings = parse_settings(data, source, root)
    return settings if path is None else _relative_to(settings, Path(path).resolve().parent)


def _relative_to(settings: Settings, folder: Path) -> Settings:
    """Relative paths in a config file are read from the file's folder, not from wherever the command
    happens to run (a unit, a container, a cron line each start elsewhere)."""
    update: dict[str, Any] = {}
    mirror: dict[str, Any] = {}
    if not settings.mirror.path.is_absolute():
        mirror["path"] = folder / settings.mirror.path
    data = settings.mirror.data_path
    if data is not None and "://" not in data and not Path(data).is_absolute():
        mirror["data_path"] = str(folder / data) + ("/" if data.endswith("/") else "")
    if mirror:
        update["mirror"] = settings.mirror.model_copy(update=mirror)
    url = settings.state.url.get_secret_value()
    prefix = "sqlite:///"
    if (
        url.startswith(prefix)
        and not url.startswith(prefix + "/")
        and url != "sqlite://"
        and ":memory:" not in url
    ):
        state_url = SecretStr(prefix + str(folder / url[len(prefix) :]))
        update["state"] = settings.state.model_copy(update={"url": state_url})
    return settings.model_copy(update=update) if update else settings
