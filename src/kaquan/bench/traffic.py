"""The traffic `kaquan risk simulate` sends: honest buyers and attacks, as HTTP requests from a seed.

Every actor is a list of requests; each request says which subject the server will record its decision
under (`RiskContext.subjects`: the contact typed in a shop order, the clerk behind a redemption), so the
simulator can label what the server recorded by what it knows it sent, and count the server's answers
per kind of actor. Each actor's address goes in `X-Forwarded-For` (the simulator's server trusts it from
127.0.0.1 alone), so every counter and cap sees the buyers apart, as behind a reverse proxy.

Honest buyers: varied SKUs, one order (a returning buyer two, with the same device token and contact),
one or two units, the time from page load to submit of a person (seconds to minutes). Attacks:

- `scalper`: a bot farm buying the hot SKU, a fresh contact and device token on every order, addresses
  rotated across a few hosting /24s, submitting in under a second, several units at a time;
- `denial`: unpaid holds of many units (denial of inventory), one device, fresh contacts, rotated addresses;
- `code_guessing`: random codes against voucher verification, with a clerk's token from a few devices;
- `card_testing`: many tiny orders (the cheapest SKU, one unit) from one device, a fresh contact each.

Coupon farming is not simulated: kaquan has no coupons; nor are honest redemptions (`NOT_SIMULATED`).
"""

import json
import random
import secrets
from dataclasses import dataclass, field

from kaquan.risk.features import digest

ATTACK_KINDS = ("scalper", "denial", "code_guessing", "card_testing")
NOT_SIMULATED = {
    "coupon_farming": "kaquan has no coupons: there is nothing to farm",
    "honest_redemptions": "no clerk redeems honestly in a run: every redemption is a guess, so a model may learn "
    "the action alone and the code_guessing figure is an upper bound",
}
HOT_SHARE_HONEST = 0.15  # honest buyers want the hot SKU too
RETURNING_SHARE = 0.3


@dataclass(frozen=True)
class Sku:
    code: str
    price_minor: int


@dataclass(frozen=True)
class Skus:
    """The run's catalogue: one hot SKU, a few ordinary ones, a cheap one (what card testers buy)."""

    hot: Sku
    ordinary: tuple[Sku, ...]
    cheap: Sku


@dataclass(frozen=True)
class Request:
    kind: str  # "honest" or an attack kind
    actor: int  # the actor's number within its kind
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    subject: str | None  # the subject the server records the decision under, when the simulator can know it


@dataclass
class Plan:
    requests: list[Request] = field(default_factory=list)
    actors: dict[str, int] = field(default_factory=dict)  # kind → how many actors


def _public_ip(rng: random.Random) -> str:
    first = rng.choice([n for n in range(11, 224) if n not in (100, 127, 169, 172, 192, 198, 203)])
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _token(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def _contact(rng: random.Random) -> str:
    return f"1{rng.randint(3, 9)}{rng.randint(0, 999_999_999):09d}"


def _order(
    kind: str, actor: int, rng: random.Random, *, ip: str, device: str, contact: str, sku: Sku, quantity: int, ms: int
) -> Request:
    body = json.dumps({"sku": sku.code, "quantity": quantity, "contact": contact}).encode()
    headers = {
        "X-Forwarded-For": ip,
        "Idempotency-Key": _token(rng),
        "X-Client-Token": device,
        "X-Page-Ms": str(ms),
    }
    return Request(kind, actor, "POST", "/api/orders", body, headers, f"contact:{digest(contact)}")


def _honest(rng: random.Random, skus: Skus, actor: int) -> list[Request]:
    ip, device, contact = _public_ip(rng), _token(rng), _contact(rng)
    orders = 2 if rng.random() < RETURNING_SHARE else 1
    requests = []
    for _ in range(orders):
        sku = skus.hot if rng.random() < HOT_SHARE_HONEST else rng.choice(skus.ordinary)
        ms = int(min(600_000, max(2_500, rng.lognormvariate(9.9, 0.8))))  # a median of about 20 s
        quantity = 2 if rng.random() < 0.15 else 1
        requests.append(
            _order("honest", actor, rng, ip=ip, device=device, contact=contact, sku=sku, quantity=quantity, ms=ms)
        )
    return requests


def _farm(rng: random.Random, prefixes: int) -> list[str]:
    """A few hosting /24s a farm rotates its addresses in."""
    return [f"{_public_ip(rng).rsplit('.', 1)[0]}" for _ in range(prefixes)]


def _scalper(rng: random.Random, skus: Skus, actor: int, farm: list[str]) -> list[Request]:
    return [
        _order(
            "scalper",
            actor,
            rng,
            ip=f"{rng.choice(farm)}.{rng.randint(1, 254)}",
            device=_token(rng),
            contact=_contact(rng),
            sku=skus.hot,
            quantity=rng.randint(2, 5),
            ms=rng.randint(120, 900),
        )
        for _ in range(rng.randint(3, 6))
    ]


def _denial(rng: random.Random, skus: Skus, actor: int, farm: list[str]) -> list[Request]:
    device = _token(rng)
    sku = skus.hot if rng.random() < 0.5 else rng.choice(skus.ordinary)
    return [
        _order(
            "denial",
            actor,
            rng,
            ip=f"{rng.choice(farm)}.{rng.randint(1, 254)}",
            device=device,
            contact=_contact(rng),
            sku=sku,
            quantity=rng.randint(5, 20),
            ms=rng.randint(300, 2_500),
        )
        for _ in range(rng.randint(4, 8))
    ]


def _card_testing(rng: random.Random, skus: Skus, actor: int) -> list[Request]:
    device, ip = _token(rng), _public_ip(rng)
    return [
        _order(
            "card_testing",
            actor,
            rng,
            ip=ip,
            device=device,
            contact=_contact(rng),
            sku=skus.cheap,
            quantity=1,
            ms=rng.randint(150, 1_500),
        )
        for _ in range(rng.randint(6, 12))
    ]


def _code_guessing(rng: random.Random, actor: int, clerk_token: str, clerk_subject: str) -> list[Request]:
    devices = [f"pos-{rng.getrandbits(32):08x}" for _ in range(rng.randint(1, 3))]
    ip = _public_ip(rng)
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    requests = []
    for _ in range(rng.randint(8, 15)):
        code = "".join(rng.choice(alphabet) for _ in range(20))
        body = json.dumps({"code": code, "device_id": rng.choice(devices)}).encode()
        headers = {"X-Forwarded-For": ip, "Authorization": f"Bearer {clerk_token}"}
        requests.append(
            Request("code_guessing", actor, "POST", "/admin/api/redemptions/verify", body, headers, clerk_subject)
        )
    return requests


def plan(seed: int, *, honest: int, attackers: int, skus: Skus, clerk_token: str, clerk_subject: str) -> Plan:
    """The requests of one run, interleaved at random (each actor's own requests stay in order). `attackers`
    actors of each attack kind."""
    rng = random.Random(seed)  # noqa: S311  (simulated traffic, reproducible on purpose)
    farm = _farm(rng, 4)
    actors: list[list[Request]] = [_honest(rng, skus, i) for i in range(honest)]
    for i in range(attackers):
        actors.append(_scalper(rng, skus, i, farm))
        actors.append(_denial(rng, skus, i, farm))
        actors.append(_card_testing(rng, skus, i))
        actors.append(_code_guessing(rng, i, clerk_token, clerk_subject))
    queues = [list(reversed(requests)) for requests in actors if requests]
    ordered: list[Request] = []
    while queues:  # the next request from an actor chosen in proportion to what it has left: spread evenly
        queue = rng.choices(queues, weights=[len(q) for q in queues])[0]
        ordered.append(queue.pop())
        if not queue:
            queues.remove(queue)
    counts = {"honest": honest, **dict.fromkeys(ATTACK_KINDS, attackers)}
    return Plan(ordered, counts)


def fresh_tag() -> str:
    return f"SIM-{secrets.token_hex(3).upper()}"


def clerk_subject(user_id: int) -> str:
    """The subject a clerk's redemptions are recorded under (`Principal.account`, digested)."""
    return f"account:{digest(f'admin_user:{user_id}')}"
