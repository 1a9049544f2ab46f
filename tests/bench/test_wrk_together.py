"""Several wrk runs read as one: the rounds of bench flash's late buyers, and of its bare-ASGI baseline."""

from kaquan.bench.wrk import Load, together


def a_run(seconds: float, answers: int, timeouts: int, p50_ms: float, p99_ms: float, told: list[str]) -> Load:
    return Load(
        seconds=seconds,
        answers=answers,
        won=len(told),
        sold_out=answers - len(told),
        limit_reached=0,
        queued=0,
        errors_4xx=0,
        errors_5xx=0,
        other=0,
        timeouts=timeouts,
        socket_errors=0,
        p50_ms=p50_ms,
        p99_ms=p99_ms,
        max_ms=p99_ms * 2,
        order_numbers=told,
    )


def test_counts_and_seconds_add_up_and_the_worst_round_sets_the_tail() -> None:
    rounds = [a_run(2, 20_000, 0, 40, 90, ["A1"]), a_run(2, 10_000, 7, 60, 400, []), a_run(2, 18_000, 1, 45, 120, [])]

    whole = together(rounds)

    assert (whole.seconds, whole.answers, whole.timeouts, whole.won, whole.sold_out) == (6, 48_000, 8, 1, 47_999)
    assert whole.per_s == 8_000
    assert (whole.p50_ms, whole.p99_ms, whole.max_ms) == (45, 400, 800)
    assert whole.order_numbers == ["A1"]
