"""An image captcha for buyers without JavaScript: the same promises as the proof-of-work, read by a person.

The token is `c1:<action>:<expires unix>:<nonce>:<signature>`, signed like a proof-of-work challenge
(`ProofOfWork.sign`, the `risk.challenge` key). The answer is not in the token and not stored: it is
derived from the token under the same key (HMAC of `captcha:<payload>`, read as `LENGTH` letters and
digits that cannot be mistaken for one another), so the server can draw it again for the image and
check a typed answer without keeping any state, and nobody without the key can tell it from the token.
An answer is case-insensitive, accepted before the token expires, for its action only, and once: the
nonce is spent in the same store as a solved proof-of-work's.
"""

import hashlib
import hmac
import io
import secrets
from dataclasses import dataclass

from captcha.image import ImageCaptcha

from kaquan.kit import clock
from kaquan.risk.challenges import ProofOfWork

VERSION = "c1"
ALPHABET = "ACDEFHJKMNPRTUVWXY34679"  # no 0/O, 1/I/L, 2/Z, 5/S, 8/B
LENGTH = 5
MAX_TOKEN = 200
MAX_ANSWER = 20


@dataclass(frozen=True)
class Captcha:
    token: str
    expires_at: int


class ImageCaptchas:
    def __init__(self, pow_: ProofOfWork, *, ttl_s: int) -> None:
        self._pow = pow_
        self._ttl_s = ttl_s
        self._drawer = ImageCaptcha(width=200, height=70)

    def issue(self, action: str) -> Captcha:
        expires = int(clock.now().timestamp()) + self._ttl_s
        payload = f"{VERSION}:{action}:{expires}:{secrets.token_urlsafe(12)}"
        return Captcha(f"{payload}:{self._pow.sign(payload)}", expires)

    def _answer(self, payload: str) -> str:
        digest = hashlib.sha256(self._pow.sign(f"captcha-answer:{payload}").encode()).digest()
        return "".join(ALPHABET[byte % len(ALPHABET)] for byte in digest[:LENGTH])

    def _verified(self, token: str) -> tuple[str, list[str]] | None:
        """The payload and its parts when the token is one kaquan signed, else None."""
        if len(token) > MAX_TOKEN:
            return None
        payload, _, signature = token.rpartition(":")
        parts = payload.split(":")
        if len(parts) != 4 or parts[0] != VERSION or not parts[2].isdigit():
            return None
        if not hmac.compare_digest(signature, self._pow.sign(payload)):
            return None
        return payload, parts

    def image(self, token: str) -> bytes | None:
        """The PNG to show for a live token (None for a forged or expired one: nothing to draw)."""
        verified = self._verified(token)
        if verified is None or int(verified[1][2]) <= int(clock.now().timestamp()):
            return None
        picture = self._drawer.generate_image(self._answer(verified[0]))
        out = io.BytesIO()
        picture.save(out, format="PNG")
        return out.getvalue()

    async def redeem(self, token: str, answer: str, *, action: str) -> str | None:
        """Accept a typed answer once: None when it passes, else why not (a reason for the decision record)."""
        if len(token) > MAX_TOKEN or len(answer) > MAX_ANSWER:
            return "captcha_malformed"
        verified = self._verified(token)
        if verified is None:
            return "captcha_forged"
        payload, (_, solved_action, expires, nonce) = verified
        if solved_action != action:
            return "challenge_other_action"
        if int(expires) <= int(clock.now().timestamp()):
            return "challenge_expired"
        typed = "".join(answer.split()).upper()
        if not hmac.compare_digest(typed.encode(), self._answer(payload).encode()):
            return "captcha_wrong"
        if not await self._pow.spend(nonce, until=int(expires)):
            return "challenge_replayed"
        return None

    def answer_for_tests(self, token: str) -> str:
        """What a person reads in the image (tests type it; nothing in the service path calls this)."""
        verified = self._verified(token)
        if verified is None:
            raise ValueError("not a captcha token kaquan signed")
        return self._answer(verified[0])
