"""Settings from `KAQUAN_*` environment variables, with embedded defaults under `./var/`."""

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAQUAN_", extra="ignore")

    var_dir: Path = Path("var")
    database_url: str | None = Field(
        default=None,
        description="sqlite:///path.db or postgresql://user@host:5432/db; default: var/kaquan.db",
    )
    redis_url: str | None = None
    redis_cluster: bool = Field(
        default=False, description="KAQUAN_REDIS_URL names one node of a Redis Cluster: talk to it as a cluster"
    )
    read_database_url: str | None = Field(
        default=None,
        description="a streaming replica of the PostgreSQL database, read by dashboards, reports, exports and"
        " finance listings while it lags at most read_max_lag_s; unset: everything reads the primary",
    )
    read_max_lag_s: float = Field(
        default=5.0, gt=0, description="the most the replica's answers may be behind the primary, in seconds"
    )
    master_key: str | None = Field(default=None, description="base64 of 32 random bytes")
    retired_master_keys: str | None = Field(
        default=None, description="comma-separated base64 master keys accepted for unwrapping only (key rotation)"
    )
    dev_gateway: bool = Field(
        default=False,
        description="offer the dev payment gateway, whose pay page marks any order paid: local trials and tests only",
    )
    dev_gateway_secret: str | None = None
    gateway_simulators: bool = Field(
        default=False,
        description="offer local simulators of the installed payment providers (Alipay, WeChat Pay, Stripe) and take"
        " payments through them: demos and tests only, no money moves",
    )
    trusted_proxies: str = Field(
        default="",
        description="comma-separated IPs or CIDRs of reverse proxies whose X-Forwarded-For/-Proto are believed",
    )
    public_url: str = "http://127.0.0.1:8000"
    hold_minutes: int = Field(default=15, ge=1, description="how long an unpaid order holds its codes")
    max_per_order: int = Field(default=10_000, ge=1, description="hard cap on quantity per order, all SKUs")
    lookup_per_minute: int = Field(
        default=10, ge=1, description="wrong order lookup secrets allowed per IP per minute, on every route"
    )
    shop_max_per_order: int = Field(
        default=20, ge=1, description="units one shop order may hold unpaid, on top of the SKU's own cap"
    )
    unpaid_orders_per_client: int = Field(
        default=3, ge=1, description="unpaid shop orders one client (IP, device token or contact) may hold at once"
    )
    unpaid_units_per_client: int = Field(
        default=20, ge=1, description="units the unpaid shop orders of one client (IP, device or contact) may hold"
    )
    orders_per_ip_per_hour: int = Field(default=30, ge=1, description="shop order attempts per IP per hour")
    sale_concurrency: int = Field(
        default=32,
        ge=1,
        description="sale-path requests (orders, lookups, payment notifications) a server process works on at once;"
        " the others wait their turn in order of arrival (web.admission)",
    )
    refund_four_eyes: bool = Field(
        default=False,
        description="every after-sale refund waits for a second person's approval, even one asked by finance",
    )
    resends_per_order_per_hour: int = Field(
        default=3, ge=1, description="times support may resend one order's delivery notice an hour"
    )
    hold_pressure_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="unpaid holds above this share of a SKU's sellable stock shorten new holds",
    )
    hold_minutes_under_pressure: int = Field(
        default=5, ge=1, description="how long a new unpaid order holds its codes while its SKU is under pressure"
    )
    lock_timeout_ms: int = Field(default=2000, ge=10)
    api_window_s: int = Field(default=300, ge=1, description="signed API requests: allowed clock skew either way")
    agent_requests_per_s: int = Field(default=5000, ge=1, description="signed API requests allowed per key per second")
    agent_key_grace_hours: int = Field(default=24, ge=0, description="a rotated agent secret stays valid this long")
    callbacks_allow_private: bool = Field(
        default=False, description="allow callback URLs on private or loopback addresses (tests, closed networks)"
    )
    flash_queue_max: int = Field(default=10_000, ge=1, description="admitted flash-sale purchases waiting per event")
    flash_batch_max: int = Field(default=256, ge=1, description="flash-sale purchases committed per transaction")
    flash_wait_s: float = Field(
        default=2.0, ge=0, description="how long a purchase waits for its commit before answering with a ticket"
    )
    flash_wait_queue_max: int = Field(
        default=16,
        ge=0,
        description="a storm: with this many of the event's purchases already queued in the process, a purchase "
        "is answered with a ticket at once instead of waiting for its commit",
    )
    flash_reconcile_s: float = Field(default=5.0, gt=0, description="re-derive the gate from the database this often")
    flash_stale_s: int = Field(
        default=60, ge=1, description="an admission not committed after this long was lost (a crash)"
    )
    flash_sold_out_s: float = Field(
        default=2.0, gt=0, description="longest a process answers sold out from its copy of the gate unconfirmed"
    )
    flash_per_ip_per_minute: int = Field(default=600, ge=1, description="flash-sale requests per IP per minute")
    access_log_sold_out: str = Field(
        default="summary",
        pattern="^(summary|each)$",
        description="access log of a sold-out flash sale's answers: one line a second (summary) or one each",
    )
    # Buyer contact verification (buyers/): codes go out by e-mail (SMTP), by an SMS webhook, or, when
    # `dev_contact_codes` is on, only to the server log (demos; never in production).
    smtp_host: str | None = Field(default=None, description="SMTP server for buyer codes; unset: no e-mail")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = Field(default="kaquan <no-reply@localhost>", description="From: of the code e-mails")
    smtp_tls: str = Field(default="starttls", pattern="^(starttls|ssl|none)$", description="starttls, ssl or none")
    sms_webhook_url: str | None = Field(
        default=None, description="POSTed {to, text} (JSON) to send a buyer code by SMS; unset: no SMS"
    )
    sms_webhook_token: str | None = Field(default=None, description="sent as `Authorization: Bearer` to the webhook")
    dev_contact_codes: bool = Field(
        default=False, description="print buyer codes to the server log (demos only: anyone reading it can verify)"
    )
    phone_country_code: str = Field(default="86", pattern="^[1-9][0-9]{0,3}$", description="for numbers without +")
    buyer_token_hours: int = Field(default=24, ge=1, le=24 * 30, description="how long a verified buyer token lasts")
    buyer_codes_per_ip_per_hour: int = Field(default=20, ge=1, description="verification codes sent per IP per hour")
    # Buyers' notifications (notifications/): delivery and refund notices by the SMTP server above, or to the
    # SMS webhook, signed with `sms_webhook_secret` (Standard Webhooks) and refused on private addresses.
    notify_shop_name: str = Field(
        default="kaquan 卡券商城", max_length=60, description="the shop's name in notices' subjects and SMS"
    )
    sms_webhook_secret: str | None = Field(
        default=None,
        description="whsec_<base64> key that signs notices POSTed to the SMS webhook; unset: no SMS notices",
    )
    sms_webhook_allow_private: bool = Field(
        default=False, description="allow the SMS webhook on a private or loopback address (a bridge on this host)"
    )
    max_body_kb: int = Field(default=1024, ge=1, description="largest request body, KiB (file uploads excepted)")
    max_upload_mb: int = Field(default=512, ge=1, description="largest file upload (code imports, leak tracing), MiB")
    timezone: str = Field(
        default="Asia/Shanghai", description="the merchant's time zone (IANA name): every time a buyer sees is in it"
    )
    support_contact: str = Field(
        default="", max_length=200, description="customer service as buyers see it, e.g. 客服微信 kaquan-help"
    )
    shop_low_stock: int = Field(
        default=10, ge=1, description="the shop shows 库存紧张 (low stock) at or below this many units, never the count"
    )
    ready_worker_max_age_s: int = Field(
        default=120,
        ge=0,
        description="/readyz fails when no worker has run a pass for this long; 0 leaves the worker out of it",
    )
    metrics_token: str | None = Field(
        default=None,
        min_length=16,
        description="bearer token Prometheus sends to /metrics; unset: /metrics is off (404)",
    )
    # Risk control (risk/, docs/risk.md): one decision per order attempt, scored by the operators' rules.
    risk_enabled: bool = Field(default=True, description="score and record every order attempt (docs/risk.md)")
    risk_challenge_at: int = Field(default=40, ge=1, le=100, description="a score from here on is challenged")
    risk_review_at: int = Field(default=70, ge=1, le=100, description="a score from here on is held for review")
    risk_decline_at: int = Field(default=90, ge=1, le=100, description="a score from here on is declined")
    risk_rule_honest_decline_bp: int = Field(
        default=100,
        ge=0,
        le=10_000,
        description="switching on a declining rule that hits more than this share (basis points) of the last week's"
        " approved decisions needs confirmation",
    )
    risk_pow_bits: int = Field(default=16, ge=1, le=32, description="proof-of-work difficulty at the challenge line")
    risk_pow_max_bits: int = Field(default=22, ge=1, le=32, description="proof-of-work difficulty at score 100")
    risk_pow_ttl_s: int = Field(default=300, ge=10, description="how long a challenge may be solved and used")
    risk_refresh_s: float = Field(default=5.0, gt=0, description="reload risk rules and lists this often")
    risk_high_demand_per_hour: int = Field(
        default=100, ge=1, description="a SKU ordered this often within the hour is high demand (sku.high_demand)"
    )
    pg_bin_dir: Path | None = Field(
        default=None,
        description="where pg_dump and pg_restore live (`kaquan backup`/`restore`); default: the newest"
        " /usr/lib/postgresql/*/bin, then PATH",
    )
    # Operator alerts (operations/alerts.py, docs/operations.md): low stock, refills, disabled callbacks, a
    # stalled worker, by e-mail (through the SMTP server above) and to a signed webhook.
    alert_email: str | None = Field(
        default=None, description="comma-separated addresses operator alerts are mailed to (needs KAQUAN_SMTP_HOST)"
    )
    alert_webhook_url: str | None = Field(default=None, description="URL operator alerts are POSTed to as JSON")
    alert_webhook_secret: str | None = Field(
        default=None, description="whsec_<base64> key that signs the alerts POSTed to the webhook; unset: no webhook"
    )
    alert_webhook_allow_private: bool = Field(
        default=False, description="allow the alert webhook on a private or loopback address (a bridge on this host)"
    )
    alert_language: str = Field(default="zh", pattern="^(zh|en)$", description="the alerts' language: zh or en")
    alert_interval_minutes: int = Field(
        default=60, ge=1, description="one alert per condition (a SKU's low stock, say) within this many minutes"
    )
    risk_model_weight: int = Field(
        default=50, ge=0, le=100, description="points the active learned model adds at probability 1 (docs/risk.md)"
    )
    risk_retrain_every_s: int = Field(
        default=604_800, ge=3600, description="the worker trains a new risk model into shadow this often (weekly)"
    )
    serve_workers: int = Field(
        default=1, ge=1, description="set by `kaquan serve --workers`: how many processes share the port"
    )
    bill_look_back_days: int = Field(
        default=7,
        ge=1,
        le=90,
        description="the daily bill job catches up every day this far back whose bill was never fetched",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Asia/Shanghai") from None
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        proxy_networks(value)
        return value

    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return proxy_networks(self.trusted_proxies)

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'kaquan.db'}"


@lru_cache
def proxy_networks(spec: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """`10.0.0.0/8, 127.0.0.1` as networks; a bad entry raises ValueError (a settings error at start)."""
    return tuple(ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


@lru_cache
def get_settings() -> Settings:
    return Settings()
