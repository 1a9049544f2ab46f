"""Proof-of-work: a challenged request goes through once with a solution of a hard enough, unexpired,
untampered challenge of its own action, and never twice."""

import hashlib

import pytest

from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.risk import ChallengeRequired, RiskContext, RiskEngine, rules, solve
from kaquan.risk.challenges import leading_zero_bits

SHOP = RiskContext("shop.order", ip="203.0.113.7")


async def challenged(db: Database, engine: RiskEngine, *, score: int = 40) -> RiskEngine:
    async with db.transaction() as session:
        await rules.add(session, name="all", expression="order.quantity >= 1", score=score, enabled=True, actor="t")
    engine.invalidate()
    return engine


def with_solution(solution: str, context: RiskContext = SHOP) -> RiskContext:
    return RiskContext(context.action, ip=context.ip, solution=solution)


async def test_a_solved_challenge_lets_the_request_through_once(db: Database, engine: RiskEngine) -> None:
    await challenged(db, engine)
    first = await engine.decide(SHOP)
    assert first.outcome == "challenge" and first.challenge is not None
    with pytest.raises(ChallengeRequired) as refused:
        first.enforce()
    assert refused.value.details["challenge"]["token"] == first.challenge.token

    solution = solve(first.challenge.token, first.challenge.bits)
    passed = await engine.decide(with_solution(solution))
    assert (passed.outcome, passed.reasons[-1]) == ("approve", "challenge_solved")
    passed.enforce()

    replayed = await engine.decide(with_solution(solution))
    assert (replayed.outcome, replayed.reasons[-1]) == ("challenge", "challenge_replayed")


async def test_expired_forged_unsolved_and_misplaced_solutions_are_refused(db: Database, engine: RiskEngine) -> None:
    await challenged(db, engine)
    challenge = (await engine.decide(SHOP)).challenge
    assert challenge is not None
    solution = solve(challenge.token, challenge.bits)

    forged = solution.replace("shop.order", "flash.purchase")  # another action, the signature kept
    unsolved = next(
        f"{challenge.token}:{n}"
        for n in range(10_000)
        if leading_zero_bits(hashlib.sha256(f"{challenge.token}:{n}".encode()).digest()) < challenge.bits
    )
    other_action = RiskContext("flash.purchase", ip=SHOP.ip, solution=solution)
    assert (await engine.decide(with_solution(forged))).reasons[-1] == "challenge_forged"
    assert (await engine.decide(with_solution(unsolved))).reasons[-1] == "challenge_unsolved"
    assert (await engine.decide(with_solution("junk"))).reasons[-1] == "challenge_malformed"
    assert (await engine.decide(other_action)).reasons[-1] == "challenge_other_action"
    clock.travel(301)
    assert (await engine.decide(with_solution(solution))).reasons[-1] == "challenge_expired"


async def test_the_challenge_grows_harder_with_the_score(db: Database, engine: RiskEngine) -> None:
    await challenged(db, engine, score=40)
    easy = (await engine.decide(SHOP)).challenge
    await challenged_more(db, engine)
    hard = (await engine.decide(SHOP)).challenge
    assert easy is not None and hard is not None
    assert (easy.bits, hard.bits) == (8, 10)
    too_easy = solve(easy.token, easy.bits)
    assert (await engine.decide(with_solution(too_easy))).reasons[-1] == "challenge_too_easy"


async def challenged_more(db: Database, engine: RiskEngine) -> None:
    async with db.transaction() as session:
        await rules.add(session, name="more", expression="order.quantity >= 1", score=29, enabled=True, actor="t")
    engine.invalidate()


async def test_a_decline_is_not_lifted_by_a_solution(db: Database, engine: RiskEngine) -> None:
    await challenged(db, engine, score=100)
    declined = await engine.decide(SHOP)
    assert declined.outcome == "decline" and declined.challenge is None
