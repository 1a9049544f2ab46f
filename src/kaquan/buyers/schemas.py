"""Request and response shapes of the buyer verification API."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class VerifyStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact: str = Field(min_length=3, max_length=254, description="an e-mail address or a phone number (+country)")


class VerifyStarted(BaseModel):
    contact: str = Field(description="the contact as normalized: lowercase e-mail, +<country><number>")
    channel: Literal["email", "sms", "dev"]
    expires_at: datetime
    resend_after_s: int = Field(description="a new code for this contact is refused (429) until then")


class VerifyConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact: str = Field(min_length=3, max_length=254)
    code: str = Field(min_length=1, max_length=16)


class BuyerTokenOut(BaseModel):
    contact: str
    token: str = Field(description="send as `Authorization: Bearer <token>` (also set as the kq_buyer cookie)")
    expires_at: datetime
