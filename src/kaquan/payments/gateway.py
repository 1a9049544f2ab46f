"""The gateway interface: what kaquan asks of every payment provider, in kaquan's own words.

A gateway adapter (Alipay, WeChat Pay, Stripe, the dev gateway) maps between
a provider's protocol and these types, and nothing more: it starts a trade for
a payment, verifies and reads the provider's notifications, queries a trade
when a notification is late, closes an unpaid trade, and refunds. Which order
a payment pays, what a success delivers and how money is booked are the
payments service's business, never an adapter's.

Adapters are plugins: a package names a factory under the `kaquan.gateways`
entry point group (see `payments.plugins`), and the factory returns a gateway
when its configuration is present and None when it is not.

Identifiers: kaquan's payment token is the merchant's trade number at the
provider (`out_trade_no`, `client_reference_id`); a refund's number
(`refund_no`, `out_request_no`, `out_refund_no`) is kaquan's, so a retried
refund is the same refund to the provider and is never paid out twice.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

NotificationKind = Literal["paid", "closed", "refund"]
TradeStatus = Literal["pending", "paid", "closed", "not_found"]
RefundStatus = Literal["processing", "succeeded", "failed"]
ActionKind = Literal["redirect", "qr", "form", "jsapi"]


@dataclass(frozen=True)
class PaymentRequest:
    """Everything a provider needs to open a trade for one payment."""

    token: str  # kaquan's payment token: the merchant trade number at the provider
    order_number: str
    subject: str  # what the buyer sees on the provider's page, e.g. "腾讯视频VIP月卡 x1"
    amount_minor: int
    currency: str
    method: str  # one of the gateway's `methods`
    expires_at: datetime  # the trade must not be payable after this (the order's hold ends)
    notify_url: str  # where the provider posts its notifications: {public_url}/payments/{gateway}/notify
    return_url: str  # where the buyer's browser goes after paying: the order page
    client_ip: str | None = None  # WeChat H5 needs the payer's address
    payer_id: str | None = None  # WeChat JSAPI: the buyer's openid


@dataclass(frozen=True)
class PayAction:
    """What the buyer does next to pay: open a URL, scan a QR code, submit a form, or call a JS bridge.

    `qr` is the text to encode (kaquan renders it as inline SVG); `fields` are
    the form fields for kind "form" (POSTed to `url`) or the bridge parameters
    for kind "jsapi"; `provider_ref` is the provider's handle on the trade
    (prepay id, checkout session id), kept with the payment.
    """

    kind: ActionKind
    url: str | None = None
    qr: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    provider_ref: str | None = None


@dataclass(frozen=True)
class Notification:
    """A verified statement from a provider about one payment.

    kind "paid": the trade succeeded (`txn_id` is the provider's trade id);
    "closed": the trade was closed unpaid; "refund": a refund (`refund_no`,
    kaquan's number) reached `refund_status`. Amounts are what the provider
    says, in minor units of `currency`, for kaquan to compare with its own.
    `payer` is the provider's id of the paying account (risk control),
    `fee_minor` the provider's fee when it tells.
    """

    kind: NotificationKind
    payment_token: str
    amount_minor: int
    currency: str
    txn_id: str | None = None
    refund_no: str | None = None
    refund_status: RefundStatus | None = None
    payer: str | None = None
    fee_minor: int | None = None


@dataclass(frozen=True)
class Ignored:
    """A genuine notification (signed, fresh, for this merchant) that says nothing kaquan acts on.

    The provider hears its success answer, or it would retry for days, and the notification is recorded
    and otherwise ignored: Alipay's WAIT_BUYER_PAY, a Stripe event type kaquan does not subscribe to.
    `what` names it (the trade status, the event type); `payment_token` is the trade's, when it names one.
    """

    what: str
    payment_token: str | None = None


@dataclass(frozen=True)
class Chargeback:
    """A verified statement that the buyer's bank took a payment back (a dispute opened: 拒付).

    `dispute_id` is the provider's id of the dispute (a re-delivery names it again: applied once);
    `txn_id` is the provider's trade id of the payment it takes back, as a `paid` notification gave
    it (the dispute does not carry kaquan's payment token); `fee_minor` is the dispute fee the
    provider charges on top, `reason` the provider's word for why (Stripe: `fraudulent`, …).
    """

    dispute_id: str
    txn_id: str
    amount_minor: int
    currency: str
    fee_minor: int = 0
    reason: str = ""


@dataclass(frozen=True)
class DisputeClosed:
    """A verified statement that a dispute ended (Stripe: `charge.dispute.closed`).

    `opened` is the dispute as it was opened, so a close that arrives before its opening applies both, in
    order. `status` is the provider's outcome: `won` (the bank ruled for the merchant), `lost` (final),
    `warning_closed` (an inquiry closed without a chargeback) or `prevented`. `reinstated_minor` is the
    money the provider gave back, `fee_returned_minor` the part of its dispute fee it gave back with it.
    """

    opened: Chargeback
    status: str
    reinstated_minor: int = 0
    fee_returned_minor: int = 0


@dataclass(frozen=True)
class TradeState:
    """The provider's answer to "what happened to this payment?" (the active query after a lost notification)."""

    status: TradeStatus
    amount_minor: int | None = None
    currency: str | None = None
    txn_id: str | None = None
    payer: str | None = None


@dataclass(frozen=True)
class RefundRequest:
    payment_token: str
    txn_id: str | None
    refund_no: str  # kaquan's refund number: idempotent at the provider
    amount_minor: int  # this refund
    total_minor: int  # the payment's whole amount (WeChat wants both)
    currency: str
    reason: str
    notify_url: str


@dataclass(frozen=True)
class RefundResult:
    status: RefundStatus
    provider_ref: str | None = None  # the provider's refund id
    detail: str = ""  # the provider's words when it failed


@dataclass(frozen=True)
class Acknowledgement:
    """The HTTP answer a provider expects to a notification (Alipay wants the bare text "success")."""

    status_code: int
    body: bytes
    media_type: str


class Gateway(Protocol):
    name: str  # the provider's short name, in URLs and on every payment: "alipay", "wechatpay", "stripe", "dev"
    methods: tuple[str, ...]  # the ways a buyer pays through it, e.g. ("page", "wap", "qr")
    fee_rate_bp: int  # the merchant's contracted fee, basis points of the amount (60 = 0.6 %)
    fee_fixed_minor: int  # a fixed fee per successful charge on top of the rate, minor units (Stripe: 30); 0 for most
    keeps_fee_on_refund: bool  # True: a refund gives back none of the fee (Stripe); False: its share (Alipay)

    async def create(self, request: PaymentRequest) -> PayAction: ...

    def verify(self, headers: dict[str, str], body: bytes) -> Notification | Chargeback | DisputeClosed | Ignored:
        """Check the notification's signature and freshness and read it; raise a payments error if it fails.

        A genuine notification kaquan has no use for is `Ignored`, never an error; a provider that reports
        disputes says so with a `Chargeback` when one opens and a `DisputeClosed` when it ends."""
        ...

    def acknowledge(self, error_code: str | None) -> Acknowledgement:
        """The answer to a notification: accepted (`error_code` None), or refused with kaquan's error code."""
        ...

    async def query(self, payment_token: str) -> TradeState: ...

    async def close(self, payment_token: str) -> None: ...

    async def refund(self, request: RefundRequest) -> RefundResult: ...

    async def query_refund(self, payment_token: str, refund_no: str) -> RefundResult: ...
