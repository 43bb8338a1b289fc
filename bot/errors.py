"""The two kinds of failure: the user's (a sentence to read) and ours (a reference to quote)."""

from __future__ import annotations


class CommandError(Exception):
    """An expected refusal: bad input, unknown add-in, not allowed.

    `reason` is the one line the user reads; nothing has changed when it is raised.
    """

    def __init__(self, reason: str, *, usage: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.usage = usage

    def __str__(self) -> str:
        if self.usage:
            return f"{self.reason} Usage: {self.usage}"
        return self.reason


class BadWords(CommandError):
    """The command's words are wrong in a way only its handler sees (a number out of range):
    chat adds the command's usage, as for any other mistake in its words."""


class StoreBusy(CommandError):
    """The database could not be reached or stayed locked; the user may simply try again."""

    def __init__(self) -> None:
        super().__init__("The database is busy or unreachable; nothing was changed. Try again.")
