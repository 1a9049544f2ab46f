"""Settings from `KAQUAN_*` environment variables, with embedded defaults under `./var/`."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAQUAN_", extra="ignore")

    var_dir: Path = Path("var")
    database_url: str | None = Field(
        default=None,
        description="sqlite:///path.db or postgresql://user@host:5432/db; default: var/kaquan.db",
    )
    redis_url: str | None = None
    master_key: str | None = Field(default=None, description="base64 of 32 random bytes")
    retired_master_keys: str | None = Field(
        default=None, description="comma-separated base64 master keys accepted for unwrapping only (key rotation)"
    )
    dev_gateway_secret: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    hold_minutes: int = Field(default=15, ge=1, description="how long an unpaid order holds its codes")
    max_per_order: int = Field(default=10_000, ge=1, description="hard cap on quantity per order, all SKUs")
    lookup_per_minute: int = Field(default=10, ge=1, description="order lookups allowed per IP per minute")
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
    flash_reconcile_s: float = Field(default=5.0, gt=0, description="re-derive the gate from the database this often")
    flash_stale_s: int = Field(
        default=60, ge=1, description="an admission not committed after this long was lost (a crash)"
    )
    flash_per_ip_per_minute: int = Field(default=600, ge=1, description="flash-sale requests per IP per minute")
    max_body_kb: int = Field(default=1024, ge=1, description="largest request body, KiB (file uploads excepted)")
    max_upload_mb: int = Field(default=512, ge=1, description="largest file upload (code imports, leak tracing), MiB")
    serve_workers: int = Field(
        default=1, ge=1, description="set by `kaquan serve --workers`: how many processes share the port"
    )

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'kaquan.db'}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
