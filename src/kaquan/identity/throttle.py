"""Sign-in throttling that slows a password guesser without ever locking the owner out.

A lock on the account is a weapon in the attacker's hands: five wrong passwords
from anywhere used to shut the owner out for 15 minutes. Failures are counted
instead against what the guesser must pay for, an address, and refused there:

- per (account, address): 5 failures in 15 minutes, then that address is refused
  for that account until the window ends (429 `login_throttled` + Retry-After);
- per address, any account: 30 failures an hour (slows spraying many accounts);
- per account, any address: past 5 failures in 15 minutes the account is under
  attack and every address that has failed against it in the window is refused
  at once, so each further guess needs a fresh address. An address without
  failures is never refused by this counter: the right password from a clean
  address always signs in (and TOTP, where enabled, is still required).

Counters are keyed on the username as typed (normalised), known or not, so a
refusal says nothing about whether an account exists. Every attempt is charged
before the password is checked and refunded unless it failed, so concurrent
guesses cannot overrun a limit (a refused attempt holds its charge until its
refund, so a concurrent burst may be refused slightly early, never late). They live in the rate limiter: Redis across
processes when configured, else in this process (a restart forgets them).
"""

import logging
from dataclasses import dataclass

from kaquan.identity.errors import LoginThrottled
from kaquan.kit.ratelimit import RateLimiter

log = logging.getLogger(__name__)

WINDOW_S = 15 * 60
PAIR_FAILURES = 5
ADDRESS_FAILURES = 30
ADDRESS_WINDOW_S = 60 * 60
ACCOUNT_FAILURES = 5


@dataclass(frozen=True)
class Charge:
    """The counter keys one admitted attempt was charged to."""

    account: str
    pair: str
    address: str


@dataclass(frozen=True)
class SignInThrottle:
    limiter: RateLimiter

    @staticmethod
    def charge_for(username: str, ip: str | None) -> Charge:
        address = ip or "unknown"
        return Charge(
            account=f"login:fail:account:{username}",
            pair=f"login:fail:pair:{username}:{address}",
            address=f"login:fail:address:{address}",
        )

    async def admit(self, username: str, ip: str | None) -> Charge:
        """Charge one attempt to every counter, or refuse it (charging nothing) with when to retry."""
        charge = self.charge_for(username, ip)
        under_attack = bool(await self.limiter.hit(charge.account, limit=ACCOUNT_FAILURES, window_s=WINDOW_S))
        pair_wait = await self.limiter.hit(charge.pair, limit=1 if under_attack else PAIR_FAILURES, window_s=WINDOW_S)
        address_wait = await self.limiter.hit(charge.address, limit=ADDRESS_FAILURES, window_s=ADDRESS_WINDOW_S)
        if pair_wait or address_wait:
            await self.refund(charge)
            # Not the username: people type passwords into that field too.
            log.warning(
                "sign-in refused from %s: too many failures %s", ip, "here" if address_wait else "on one account"
            )
            raise LoginThrottled(retry_after=max(pair_wait, address_wait))
        return charge

    async def refund(self, charge: Charge) -> None:
        """Take the charge back: the attempt did not fail (it signed in, or the password was right)."""
        await self.limiter.undo(charge.account, window_s=WINDOW_S)
        await self.limiter.undo(charge.pair, window_s=WINDOW_S)
        await self.limiter.undo(charge.address, window_s=ADDRESS_WINDOW_S)
