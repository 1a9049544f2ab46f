"""Request and response shapes of sign-in, users and API tokens. No response ever holds a hash."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kaquan.identity.permissions import Permission

Role = Literal["owner", "operator", "finance", "support", "auditor"]
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,63}$"


def _normalise(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    totp: str | None = Field(default=None, max_length=10)

    _username = field_validator("username", mode="before")(_normalise)


class LoginOut(BaseModel):
    username: str
    role: str
    csrf_token: str
    expires_at: datetime


class MeOut(BaseModel):
    id: int
    username: str
    role: str
    permissions: list[Permission]
    totp_enabled: bool
    via: Literal["session", "token"]


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class PasswordChanged(BaseModel):
    sessions_revoked: int
    csrf_token: str | None = Field(description="the new session's CSRF token, when signed in by session")


class TotpEnrolment(BaseModel):
    secret: str = Field(description="base32; shown once, for the authenticator app")
    otpauth_uri: str


class TotpConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=6, max_length=10)


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(min_length=1, max_length=256)
    role: Role

    _username = field_validator("username", mode="before")(_normalise)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: str
    disabled: bool
    totp_enabled: bool
    failed_logins: int = Field(description="failed sign-ins since the last successful one (never a lock)")
    created_at: datetime
    last_login_at: datetime | None


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    scopes: list[Permission] = Field(min_length=1)
    expires_in_days: int = Field(
        default=90, ge=1, le=366, description="capped at the creating token's own expiry when a token creates it"
    )


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    parent_id: int | None = Field(description="the token that created this one; revoking it revokes this too")
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="the plaintext token: shown this once, stored only as a hash")
