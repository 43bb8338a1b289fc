"""The two kinds of failure: the user's (a sentence to read) and ours (a reference to quote)."""

from __future__ import annotations

from bot.i18n import ENGLISH, Tr, msg


class CommandError(Exception):
    """An expected refusal: bad input, unknown add-in, not allowed.

    `message` is the one line the user reads (a Msg, said in the reader's language by
    `said`); `reason` is its English. Nothing has changed when it is raised.
    """

    def __init__(self, reason: str, *, usage: str | None = None) -> None:
        super().__init__(reason)
        self.message = reason
        self.usage = usage

    @property
    def reason(self) -> str:
        return str.__str__(self.message)

    def said(self, tr: Tr) -> str:
        reason = tr.say(self.message)
        if self.usage:
            return tr.gettext("{reason} Usage: {usage}", reason=reason, usage=self.usage)
        return reason

    def __str__(self) -> str:
        return self.said(ENGLISH)


class BadWords(CommandError):
    """The command's words are wrong in a way only its handler sees (a number out of range):
    chat adds the command's usage, as for any other mistake in its words."""


class StoreBusy(CommandError):
    """The database could not be reached or stayed locked; the user may simply try again."""

    def __init__(self) -> None:
        super().__init__(
            msg("The database is busy or unreachable; nothing was changed. Try again.")
        )


class ImportRefused(CommandError):
    """A bulk import refused as a whole: one line per problem (each naming its line in the
    file); nothing has changed."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        first = f"line {problems[0][0]}: {problems[0][1]}" if problems else "refused"
        super().__init__(f"The import was refused, {first}")
        self.problems = problems  # (line, the reason), in the file's order
