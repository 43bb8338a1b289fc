"""bot.subject: the add-in's tail on a room's subject — what people wrote always stays."""

from __future__ import annotations

import pytest

from bot import subject

TAIL = "Stock Ticker: https://stocks.example.org/panel"
NEW = "Stock Ticker: https://stocks.example.org/v2"


@pytest.mark.parametrize(("current", "old", "new", "wanted"), [
    ("Weekly sync", None, TAIL, f"Weekly sync · {TAIL}"),  # attach
    ("", None, TAIL, TAIL),  # no subject: the tail alone
    (f"Weekly sync · {TAIL}", TAIL, NEW, f"Weekly sync · {NEW}"),  # a new URL
    (f"Weekly sync · {TAIL}", TAIL, None, "Weekly sync"),  # detach, pin off
    (TAIL, TAIL, None, ""),
    (f"Weekly sync · {TAIL}", TAIL, TAIL, None),  # nothing to change
    ("Rewritten by a person", TAIL, None, None),  # no tail of ours at the end: kept whole
    ("Rewritten by a person", TAIL, NEW, f"Rewritten by a person · {NEW}"),
    (f"Weekly sync · {TAIL} · Other bot: x", TAIL, TAIL, None),  # another bot's after ours
    (f"{TAIL} was our old link", TAIL, None, None),  # only at the very end
    (f"Weekly sync ·{TAIL}", TAIL, None, None),  # not the bot's separator
])
def test_only_the_tail_the_bot_wrote_is_changed(
    current: str, old: str | None, new: str | None, wanted: str | None
) -> None:
    assert subject.next_subject(current, old, new) == wanted


def test_what_people_wrote_is_found_only_before_the_bots_own_tail() -> None:
    assert subject.without_tail(f"a · b · {TAIL}", TAIL) == "a · b"
    assert subject.without_tail(f"a · {NEW}", TAIL) is None
    assert subject.without_tail("anything", None) is None
    assert subject.holds(f"x · {TAIL} · y", TAIL)
