"""Faster XML escaping for slixmpp's serialiser, with the same output.

slixmpp's `tostring.escape` maps every character of every text and attribute through a
Python generator: 88 µs for the 1,300 characters of a `list` answer, more than the rest of
the bot's work on it. The same five replacements done by `str.replace` take 4 µs.
`install()` puts this in its place for the whole process; tests/test_escape.py checks the
two give the same output for any text.
"""

from __future__ import annotations

import importlib
from typing import Any

# By its full name: `slixmpp.xmlstream.tostring` is also the name of the function.
_TOSTRING: Any = importlib.import_module("slixmpp.xmlstream.tostring")
SLIXMPP_ESCAPE = _TOSTRING.escape


def escape(text: str, use_cdata: bool = False) -> str:
    if use_cdata:  # not used by the bot; slixmpp's own way
        return str(SLIXMPP_ESCAPE(text, use_cdata))
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace("'", "&apos;").replace('"', "&quot;")
    )


def install() -> None:
    _TOSTRING.escape = escape
