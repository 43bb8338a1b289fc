"""`bot.commands.grammar`: recognising a command, splitting its words, matching a signature."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.commands.grammar import (
    COMMAND,
    FORCE,
    MAX_COMMAND_CHARS,
    MAX_WORDS,
    NAME,
    PAGE,
    POOL,
    URL,
    Signature,
    match,
    split_words,
    strip_direct_prefix,
    strip_room_prefix,
)
from bot.errors import CommandError

NICK = "AddinBot"
REGISTER = Signature(required=(NAME, URL), options=(POOL,))
UNREGISTER = Signature(required=(NAME,), options=(POOL,), flags=(FORCE,))
LIST = Signature(options=(POOL, PAGE))
HELP = Signature(optional=(COMMAND,))


# --- splitting words -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("register Stock https://s.example/", ["register", "Stock", "https://s.example/"]),
        ('register "Stock Ticker" https://s.example/', ["register", "Stock Ticker", "https://s.example/"]),
        ("register 'Stock Ticker' x", ["register", "Stock Ticker", "x"]),
        ('  show   "a  b"  ', ["show", "a  b"]),
        ('attach dev@muc "Q&A board"', ["attach", "dev@muc", "Q&A board"]),
        ("", []),
        ("   ", []),
        ('show ""', ["show", ""]),
    ],
)
def test_words_split_like_a_shell(text: str, words: list[str]) -> None:
    assert split_words(text) == words


@pytest.mark.parametrize("text", ['register "Stock Ticker https://s.example/', "show 'x", 'a "'])
def test_unbalanced_quotes_are_refused(text: str) -> None:
    with pytest.raises(CommandError, match="Unbalanced quotes"):
        split_words(text)


def test_a_command_of_the_longest_length_is_accepted_and_one_more_is_refused() -> None:
    longest = "show " + "x" * (MAX_COMMAND_CHARS - 5)
    assert split_words(longest) == ["show", "x" * (MAX_COMMAND_CHARS - 5)]
    with pytest.raises(CommandError, match="too long"):
        split_words(longest + "x")


def test_too_many_words_are_refused() -> None:
    assert len(split_words(" ".join(["w"] * MAX_WORDS))) == MAX_WORDS
    with pytest.raises(CommandError, match="too many words"):
        split_words(" ".join(["w"] * (MAX_WORDS + 1)))


def test_a_nul_character_is_refused() -> None:
    with pytest.raises(CommandError, match="NUL"):
        split_words("show a\x00b")


def words_or_refusal(text: str) -> list[str] | CommandError:
    try:
        return split_words(text)
    except CommandError as exc:
        return exc


SHELLISH = st.text(alphabet=st.sampled_from(list("\"'\\ \t\nab!:,")), max_size=60)


@given(st.one_of(st.text(max_size=300), SHELLISH))
def test_split_words_returns_words_or_a_command_error_never_another_exception(text: str) -> None:
    result = words_or_refusal(text)
    if isinstance(result, CommandError):
        assert result.reason
    else:
        assert all(isinstance(word, str) for word in result)


# --- prefixes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("register a b", "register a b"),
        ("!addin register a b", "register a b"),
        ("  !ADDIN   list  ", "list"),
        ("!addin", ""),
        ("!addins list", "!addins list"),  # not our prefix: left for the dispatcher to refuse
    ],
)
def test_a_direct_message_is_always_a_command(text: str, command: str) -> None:
    assert strip_direct_prefix(text) == command


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("!addin", ""),
        ("!addin show", "show"),
        ("  !Addin  attach Stock  ", "attach Stock"),
        ("!addin\tlist", "list"),
        ("AddinBot: show", "show"),
        ("AddinBot, list", "list"),
        ("AddinBot:list", "list"),
        ("AddinBot: !addin show", "show"),
        ("AddinBot, !addin", ""),
        ("AddinBot:", ""),
    ],
)
def test_a_room_message_addressed_to_the_bot_is_a_command(text: str, command: str) -> None:
    assert strip_room_prefix(text, NICK) == command


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello everyone",
        "!addins list",  # somebody else's word
        "!addinshow",
        "please !addin show",
        "AddinBot show",  # the nick needs ":" or ","
        "AddinBot2: show",
        "AddinBot\u200b: show",  # a look-alike of the nick
        "Addin: show",
    ],
)
def test_other_room_messages_are_ignored(text: str) -> None:
    assert strip_room_prefix(text, NICK) is None


@pytest.mark.parametrize("text", ["addinbot: show", "addinbot, show", "ADDINBOT: show"])
def test_the_nick_is_recognised_whatever_its_case(text: str) -> None:
    assert strip_room_prefix(text, NICK) == "show"


def test_the_nick_prefix_follows_the_nick_the_bot_has() -> None:
    assert strip_room_prefix("AddinBot_: show", "AddinBot_") == "show"
    assert strip_room_prefix("AddinBot: show", "AddinBot_") is None


def test_an_empty_nick_matches_nothing_but_the_prefix() -> None:
    assert strip_room_prefix(": show", "") is None
    assert strip_room_prefix("!addin show", "") == "show"


@given(st.text(max_size=200), st.text(max_size=20))
def test_strip_room_prefix_never_raises(text: str, nick: str) -> None:
    result = strip_room_prefix(text, nick)
    assert result is None or isinstance(result, str)


@given(st.text(max_size=200))
def test_strip_direct_prefix_never_raises(text: str) -> None:
    assert isinstance(strip_direct_prefix(text), str)


# --- signatures ----------------------------------------------------------------------------


def test_required_words_then_an_option() -> None:
    args = match(REGISTER, ["Stock Ticker", "https://s.example/", "pool", "conference.localhost"])
    assert args["name"] == "Stock Ticker"
    assert args["url"] == "https://s.example/"
    assert args.options == {"pool": "conference.localhost"}
    assert args.get("pool") == "conference.localhost"


def test_option_keywords_are_case_insensitive_but_values_are_kept() -> None:
    args = match(REGISTER, ["a", "u", "POOL", "Conference.Localhost"])
    assert args.options == {"pool": "Conference.Localhost"}


def test_an_add_in_may_be_named_pool_or_force() -> None:
    pooled = match(REGISTER, ["pool", "https://s.example/", "pool", "conference.localhost"])
    assert pooled["name"] == "pool"
    assert pooled.options == {"pool": "conference.localhost"}

    forced = match(UNREGISTER, ["force"])
    assert forced["name"] == "force"
    assert forced.flags == frozenset()

    both = match(UNREGISTER, ["force", "force"])
    assert both["name"] == "force"
    assert both.flags == {"force"}


def test_a_flag_and_an_option_in_any_order() -> None:
    args = match(UNREGISTER, ["Stock", "force", "pool", "conference.localhost"])
    assert args.flags == {"force"}
    assert args.options == {"pool": "conference.localhost"}
    assert match(UNREGISTER, ["Stock", "pool", "p", "FORCE"]).flags == {"force"}


def test_an_optional_word() -> None:
    assert match(HELP, []).get("command") is None
    assert match(HELP, ["register"])["command"] == "register"


def test_a_missing_required_word_is_named() -> None:
    with pytest.raises(CommandError, match=r"^Missing <url>\.$"):
        match(REGISTER, ["Stock"])
    with pytest.raises(CommandError, match=r"^Missing <name>\.$"):
        match(REGISTER, [])


def test_an_option_given_twice_is_refused() -> None:
    with pytest.raises(CommandError, match="“pool” is given twice"):
        match(REGISTER, ["a", "u", "pool", "p", "pool", "q"])


def test_an_option_without_its_value_is_refused() -> None:
    with pytest.raises(CommandError, match="“pool” needs a value"):
        match(REGISTER, ["a", "u", "pool"])
    with pytest.raises(CommandError, match="“page” needs a value"):
        match(LIST, ["page"])


def test_unexpected_words_are_refused_and_shortened() -> None:
    with pytest.raises(CommandError, match=r"^Unexpected “extra”\.$"):
        match(REGISTER, ["a", "u", "extra"])
    with pytest.raises(CommandError, match="Unexpected “second”"):
        match(HELP, ["first", "second"])
    with pytest.raises(CommandError) as caught:
        match(REGISTER, ["a", "u", "y" * 500])
    assert len(caught.value.reason) < 100
    assert "…" in caught.value.reason
