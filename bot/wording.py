"""Small rules of the words the bot writes, shared by every layer that writes them: plurals,
lists cut to a length with "and N more", and the nearest of a few names to a mistyped one.
Pure functions over text; nothing here knows about XMPP, roles or the store."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from bot.i18n import Msg, Tr, msg, msg_n

# A list in one sentence (the rooms using an add-in) names at most this many.
MOST_LISTED = 20


def plural(count: int, word: str, many: str | None = None) -> str:
    """“1 room”, “2 rooms” (`many`: the plural, where adding an s is wrong)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def cut(text: str, most: int, tr: Tr) -> str:
    """`text` if it holds at most `most` characters; else its first whole lines that fit,
    and a last line saying how many more there were."""
    if len(text) <= most:
        return text
    lines = text.split("\n")
    kept: list[str] = []
    size = 0
    room = most - 40  # for the last line
    for line in lines:
        if size + len(line) + 1 > room:
            break
        kept.append(line)
        size += len(line) + 1
    if not kept:  # one line longer than the whole budget: cut inside it
        return text[: most - 1] + "…"
    more = len(lines) - len(kept)
    return "\n".join([*kept, tr.ngettext("… and {n} more line.", "… and {n} more lines.", more)])


def only_pages(pages: int) -> Msg:
    """The refusal of a page past the last."""
    return msg_n("There is only {n} page.", "There are only {n} pages.", pages)


def some_of(items: Sequence[str], most: int = MOST_LISTED) -> Msg:
    """The items, comma-separated: all of them, or the first `most` and “and N more”."""
    if len(items) <= most:
        return Msg("{items}", (("items", ", ".join(items)),))  # not a sentence: not extracted
    return msg("{items} and {more} more", items=", ".join(items[:most]), more=len(items) - most)


def nearest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to a mistyped `word` (case aside), if one is close enough."""
    by_key = {choice.casefold(): choice for choice in choices}
    found = difflib.get_close_matches(word.casefold(), list(by_key), n=1, cutoff=0.6)
    return by_key[found[0]] if found else None


def did_you_mean(word: str, choices: Iterable[str]) -> Msg | str:
    """“ Did you mean “attach”?”, or nothing when no choice is close."""
    found = nearest(word, choices)
    return msg(" Did you mean “{word}”?", word=found) if found is not None else ""
