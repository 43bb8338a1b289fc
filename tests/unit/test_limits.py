"""Rate limits as plain logic, on a fake clock."""

from __future__ import annotations

from bot.limits import RateLimit, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_over_the_limit_one_notice_then_silence_until_the_window_passes() -> None:
    clock = Clock()
    limit = RateLimit(3, 10.0, clock)
    assert [limit.check("a") for _ in range(3)] == [Verdict.ALLOW] * 3
    assert limit.check("a") is Verdict.NOTICE
    assert limit.check("a") is Verdict.SILENT
    assert limit.check("a") is Verdict.SILENT
    assert limit.retry_after("a") == 10.0
    clock.now += 9.9
    assert limit.check("a") is Verdict.SILENT
    clock.now += 0.1
    assert limit.check("a") is Verdict.ALLOW
    # once allowed again, a new flood earns a new notice
    assert [limit.check("a") for _ in range(3)] == [Verdict.ALLOW, Verdict.ALLOW, Verdict.NOTICE]


def test_keys_are_independent() -> None:
    limit = RateLimit(1, 10.0, Clock())
    assert limit.check("a") is Verdict.ALLOW
    assert limit.check("a") is Verdict.NOTICE
    assert limit.check("b") is Verdict.ALLOW


def test_zero_turns_the_limit_off() -> None:
    limit = RateLimit(0, 10.0, Clock())
    assert all(limit.check("a") is Verdict.ALLOW for _ in range(1000))


def test_prune_forgets_only_passed_windows() -> None:
    clock = Clock()
    limit = RateLimit(2, 10.0, clock)
    limit.check("old")
    clock.now += 5
    limit.check("new")
    clock.now += 6
    limit.prune()
    assert limit.check("new") is Verdict.ALLOW  # still counted: one left in its window
    assert limit.check("new") is Verdict.NOTICE
    assert limit.retry_after("old") == 0.0
