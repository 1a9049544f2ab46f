"""The image captcha: signed, expiring, single use, bound to its action, answered in any case; the answer is
neither in the token nor stored, and a right answer lets a challenged request through once."""

import io
import secrets

from PIL import Image

from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.risk import DatabaseSpentNonces, ProofOfWork, RiskContext, RiskEngine, rules
from kaquan.risk.captcha import ALPHABET, LENGTH, ImageCaptchas


def captchas(db: Database, key: bytes | None = None) -> ImageCaptchas:
    pow_ = ProofOfWork(key or secrets.token_bytes(32), DatabaseSpentNonces(db), ttl_s=300)
    return ImageCaptchas(pow_, ttl_s=300)


async def test_a_right_answer_passes_once_in_any_case_and_spacing(db: Database) -> None:
    issued = captchas(db)
    captcha = issued.issue("shop.order")
    answer = issued.answer_for_tests(captcha.token)
    assert len(answer) == LENGTH and set(answer) <= set(ALPHABET)
    assert answer not in captcha.token
    typed = " ".join(answer.lower())
    assert await issued.redeem(captcha.token, typed, action="shop.order") is None
    assert await issued.redeem(captcha.token, answer, action="shop.order") == "challenge_replayed"


async def test_wrong_expired_forged_and_misplaced_answers_are_refused_and_say_why(db: Database) -> None:
    issued = captchas(db)
    captcha = issued.issue("shop.order")
    answer = issued.answer_for_tests(captcha.token)
    wrong = "".join(ALPHABET[(ALPHABET.index(c) + 1) % len(ALPHABET)] for c in answer)
    assert await issued.redeem(captcha.token, wrong, action="shop.order") == "captcha_wrong"
    assert await issued.redeem(captcha.token, answer, action="flash.purchase") == "challenge_other_action"
    forged = captcha.token[:-2] + ("AA" if not captcha.token.endswith("AA") else "BB")
    assert await issued.redeem(forged, answer, action="shop.order") == "captcha_forged"
    assert await issued.redeem("c1:nonsense", answer, action="shop.order") == "captcha_forged"
    assert await issued.redeem(captcha.token, "A" * 50, action="shop.order") == "captcha_malformed"
    other_key = captchas(db).issue("shop.order")  # signed under another key
    assert await issued.redeem(other_key.token, answer, action="shop.order") == "captcha_forged"
    clock.travel(301)
    assert await issued.redeem(captcha.token, answer, action="shop.order") == "challenge_expired"
    clock.reset()
    assert await issued.redeem(captcha.token, answer, action="shop.order") is None  # none of the above spent it


async def test_the_picture_is_drawn_for_live_tokens_only(db: Database) -> None:
    issued = captchas(db)
    captcha = issued.issue("shop.order")
    picture = issued.image(captcha.token)
    assert picture is not None
    assert Image.open(io.BytesIO(picture)).size == (200, 70)
    assert issued.image(captcha.token[:-1] + "x") is None
    clock.travel(301)
    assert issued.image(captcha.token) is None


async def test_a_captcha_lets_a_challenged_request_through_once_and_never_lifts_a_decline(
    db: Database, engine: RiskEngine
) -> None:
    async with db.transaction() as session:
        await rules.add(
            session, name="check", expression="order.quantity >= 1", outcome="challenge", enabled=True, actor="t"
        )
        await rules.add(
            session, name="bulk", expression="order.quantity >= 9", outcome="decline", enabled=True, actor="t"
        )
    engine.invalidate()
    captcha = engine.captchas.issue("shop.order")
    solution = f"{captcha.token}:{engine.captchas.answer_for_tests(captcha.token).lower()}"
    passed = await engine.decide(RiskContext("shop.order", ip="203.0.113.5", solution=solution))
    assert (passed.outcome, passed.reasons) == ("approve", ("rule:check", "challenge_solved"))
    again = await engine.decide(RiskContext("shop.order", ip="203.0.113.5", solution=solution))
    assert again.outcome == "challenge" and again.reasons[-1] == "challenge_replayed"
    fresh = engine.captchas.issue("shop.order")
    answered = f"{fresh.token}:{engine.captchas.answer_for_tests(fresh.token)}"
    bulk = await engine.decide(RiskContext("shop.order", ip="203.0.113.5", quantity=9, solution=answered))
    assert bulk.outcome == "decline"
