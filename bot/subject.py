"""The add-in as a marked tail on a room's subject (`!addin pin on`): pure functions over
text, so that what the bot may take off a subject is decided in one place.

The bot keeps `<what people wrote> · <tail>` (the tail alone when people wrote nothing),
and takes off only the tail it wrote itself, at the very end: a subject a person rewrote
keeps everything they wrote.
"""

from __future__ import annotations

SEPARATOR = " · "


def without_tail(subject: str, tail: str | None) -> str | None:
    """What people wrote, when `subject` ends with the bot's `tail`; None when it does not
    (a person rewrote it, or there is no tail)."""
    if not tail:
        return None
    if subject == tail:
        return ""
    if subject.endswith(SEPARATOR + tail):
        return subject[: -len(SEPARATOR + tail)]
    return None


def with_tail(written: str, tail: str) -> str:
    return f"{written}{SEPARATOR}{tail}" if written else tail


def next_subject(current: str, old_tail: str | None, new_tail: str | None) -> str | None:
    """The subject to set when the tail goes from `old_tail` (what the bot last wrote, None
    if nothing) to `new_tail` (None: no tail); None when nothing is to change."""
    written = without_tail(current, old_tail)
    if written is None:
        written = current  # not the bot's tail at the end: all of it is people's
        if new_tail and new_tail in current:
            return None  # the tail is there already (another bot's may follow it)
    wanted = with_tail(written, new_tail) if new_tail else written
    return None if wanted == current else wanted


def holds(subject: str, tail: str) -> bool:
    """The subject still carries the tail (anywhere: another bot may have added its own
    after it)."""
    return tail in subject
