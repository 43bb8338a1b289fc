"""`bot.urls.validate_url`: hostile URLs are refused with a reason, good ones stored canonically."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import CommandError
from bot.urls import validate_url

SCHEME = "only http and https"
START = "must start with http:// or https://"
USERINFO = "user name or password"
SPACE = "white space"
CONTROL = "control, bidirectional or zero-width"
LOOKALIKE = "look-alike"
NO_HOST = "no host"
PORT = "port must be a number from 1 to 65535"
IPV6 = "IPv6 address is malformed"
DOTTED = "not a plain dotted quad"
BAD_CHAR = "character that is not allowed"
HYPHEN = "starts or ends with a hyphen"
LONG_LABEL = "label is longer than 63"
NON_ASCII = "non-ASCII characters outside the host"
BACKSLASH = "backslash"
MIXED = "mixes scripts"
IMITATES = "imitates Latin letters"
XN = "malformed xn-- label"
EMPTY_LABEL = "empty label or a trailing dot"

GOOD = "https://good.example/"
LONG_TAIL = "a" * (2048 - len(GOOD))

HOSTILE: list[tuple[str, str]] = [
    # schemes
    ("javascript:alert(1)", SCHEME),
    ("JaVaScRiPt:alert(document.cookie)", SCHEME),
    ("data:text/html;base64,PHNjcmlwdD4=", SCHEME),
    ("file:///etc/passwd", SCHEME),
    ("vbscript:msgbox(1)", SCHEME),
    ("ftp://files.example/x", SCHEME),
    ("ws://chat.example/", SCHEME),
    ("//evil.example/path", START),
    ("evil.example/path", START),
    ("", START),
    ("http:/evil.example", START),
    ("http:evil.example", START),
    ("https:\\\\evil.example", BACKSLASH),
    # user info
    ("https://good.example@evil.example", USERINFO),
    ("https://good.example@evil.example/login", USERINFO),
    ("https://user:pw@host.example", USERINFO),
    ("https://@evil.example", USERINFO),
    ("https://a@b@evil.example", USERINFO),
    # fullwidth and compatibility look-alikes
    ("https://good.example＠evil.example", LOOKALIKE),
    ("https://evil.example／good", LOOKALIKE),
    ("https://evil.example＃x", LOOKALIKE),
    ("https：//evil.example", LOOKALIKE),
    ("https://evil．example", LOOKALIKE),
    ("https://evil.example?q＝1", LOOKALIKE),
    ("https://ｅｖｉｌ.example/", LOOKALIKE),
    ("https://paypal.com\u2024evil.example/", LOOKALIKE),  # one dot leader
    ("https://\ufb01le.example/", LOOKALIKE),  # fi ligature
    ("https://\u212aelvin.example/", LOOKALIKE),  # Kelvin sign
    # white space
    (" https://good.example/", SPACE),
    ("https://good.example/ ", SPACE),
    ("https://good.example/a b", SPACE),
    ("https://good .example/", SPACE),
    ("https://good.example/\t", SPACE),
    ("https://good.example/\r", SPACE),
    ("https://good.example/\n", SPACE),
    ("https://good.example/\u00a0", SPACE),
    ("https://good.example/\u3000", SPACE),
    ("https://good.example/\u2028", SPACE),
    ("https://good.example/\u0085", SPACE),  # NEL is both C1 and white space
    # controls
    ("https://good.example/\x00", CONTROL),
    ("https://good\x01.example/", CONTROL),
    ("https://good.example/\x1b[31m", CONTROL),
    ("https://good.example/\x7f", CONTROL),
    ("https://good.example/\u009b", CONTROL),
    # bidirectional and zero-width
    ("https://good.example/\u202egnp.exe", CONTROL),
    ("https://\u2066evil.example\u2069/", CONTROL),
    ("https://go\u200bod.example/", CONTROL),
    ("https://good.example/\u200d", CONTROL),
    ("\ufeffhttps://good.example/", CONTROL),
    ("https://good.example/\u2065", CONTROL),  # unassigned, inside the refused block
    ("https://good\u180e.example/", CONTROL),
    ("https://good.example/\u00ad", CONTROL),  # soft hyphen
    # scripts
    ("https://pаypal.com/", MIXED),  # Cyrillic а inside a Latin label
    ("https://xn--pypal-4ve.com/", MIXED),  # the same, pre-encoded
    ("https://аррӏе.com/", IMITATES),  # all Cyrillic, spelling "apple"
    ("https://xn--80ak6aa92e.com/", IMITATES),  # the same, pre-encoded
    ("https://ѕсоре.example/", IMITATES),
    ("https://gοοgle.com/", MIXED),  # Greek omicrons
    ("https://xn--.example/", XN),
    ("https://xn--abc-.example/", XN),  # decodes to ASCII only
    ("https://xn--bcher-2pa.example/", XN),  # "bÜcher": not how these rules would encode it
    ("https://xn--abc.example/", BAD_CHAR),  # decodes to C1 controls
    ("https://xn--a-ecp.example/", LOOKALIKE),  # decodes to "a⒈"
    ("https://xn--99999999999999999999.example/", XN),
    ("https://bücher.example/straße", NON_ASCII),
    ("https://example.org/?q=é", NON_ASCII),
    ("https://ex😀ample.org/", BAD_CHAR),
    ("https://exa\u3002mple.org/", BAD_CHAR),  # ideographic full stop
    ("https://\u0301bc.example/", BAD_CHAR),  # label starting with a combining mark
    # IDNA 2008 (the idna package): a letter it disallows, and the bidi rule
    ("https://\u0645\u0640\u062b\u0627\u0644.com/", BAD_CHAR),  # Arabic tatweel (Lm)
    ("https://1\u05e9\u05dc\u05d5\u05dd.co.il/", "mixes writing directions"),  # 1 then Hebrew
    # hosts
    ("https://", NO_HOST),
    ("http:///path", NO_HOST),
    ("http://?q", NO_HOST),
    ("http://:80/", NO_HOST),
    ("http://good.example./", EMPTY_LABEL),
    ("http://.good.example/", EMPTY_LABEL),
    ("http://good..example/", EMPTY_LABEL),
    ("http://-evil.example/", HYPHEN),
    ("http://evil-.example/", HYPHEN),
    ("http://" + "a" * 64 + ".example/", LONG_LABEL),
    ("http://" + ".".join(["a" * 63] * 4) + "/", "longer than 253"),
    ("http://under_score.example/", BAD_CHAR),
    ("http://%65vil.example/", BAD_CHAR),
    ("http://evil.example:80:80/", PORT),
    ("http://0x7f.1/", DOTTED),
    ("http://0x7f000001/", DOTTED),
    ("http://2130706433/", DOTTED),
    ("http://127.1/", DOTTED),
    ("http://999.1.1.1/", DOTTED),
    ("http://012.0.0.1/", DOTTED),
    ("http://1.2.3.4.5/", DOTTED),
    ("http://example.0x1/", DOTTED),
    ("http://1.2.3.256/", DOTTED),
    # ports
    ("http://h.example:0/", PORT),
    ("http://h.example:65536/", PORT),
    ("http://h:80a", PORT),
    ("http://h:", PORT),
    ("http://h:-1/", PORT),
    ("http://h:٨٠/", PORT),  # Arabic-Indic digits
    # IPv6 literals
    ("http://[::1", IPV6),
    ("http://[not-ip]/", IPV6),
    ("http://[]/", IPV6),
    ("http://[::1]evil/", IPV6),
    ("http://[::1]:0/", PORT),
    ("http://[fe80::1%25eth0]/", "zone id"),
    ("http://[fe80::1%eth0]/", "zone id"),
    ("http://[1.2.3.4]/", IPV6),
    # backslashes
    ("https://good.example\\@evil.example/", BACKSLASH),
    ("https://evil.example\\good.example/", BACKSLASH),
    ("https://good.example/\\\\evil", BACKSLASH),
    # length
    (GOOD + LONG_TAIL + "a", "longer than 2048"),
    ("https://bücher.example/" + "a" * (2048 - 23), "longer than 2048"),
]

ACCEPTED: list[tuple[str, str]] = [
    ("https://stocks.example.org/panel", "https://stocks.example.org/panel"),
    ("HTTPS://Example.ORG/Path?q=1#F", "https://example.org/Path?q=1#F"),
    ("hTtP://EXAMPLE.org", "http://example.org"),
    ("https://bücher.example/x", "https://xn--bcher-kva.example/x"),
    ("https://BÜCHER.example/x", "https://xn--bcher-kva.example/x"),
    ("https://bu\u0308cher.example/x", "https://xn--bcher-kva.example/x"),  # decomposed ü
    ("https://xn--bcher-kva.example/x", "https://xn--bcher-kva.example/x"),
    ("https://XN--BCHER-KVA.example/x", "https://xn--bcher-kva.example/x"),
    ("https://例え.jp/", "https://xn--r8jz45g.jp/"),
    ("https://日本語のドメイン.jp/", "https://xn--u9jxfoe1dzd2589ao4bc84j.jp/"),
    ("https://한국.kr/", "https://xn--3e0b707e.kr/"),
    ("https://москва.рф/", "https://xn--80adxhks.xn--p1ai/"),
    ("https://ελλάδα.gr/", "https://xn--hxakic4aa.gr/"),
    ("https://straße.de/", "https://xn--strae-oqa.de/"),  # IDNA 2008 keeps ß
    ("https://\u05e9\u05dc\u05d5\u05dd1.co.il/", "https://xn--1-9hcuf1d.co.il/"),  # digits last
    ("http://[::1]:8080/", "http://[::1]:8080/"),
    ("http://[2001:DB8:0:0:0:0:0:1]/", "http://[2001:db8::1]/"),
    ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/a"),
    ("http://0.0.0.0/", "http://0.0.0.0/"),
    ("http://example.org:0080/", "http://example.org:80/"),
    ("https://a-b.c-d.example:65535/x", "https://a-b.c-d.example:65535/x"),
    ("http://localhost/", "http://localhost/"),
    ("https://example.org/a%20b?x=%E2%82%AC#%2F", "https://example.org/a%20b?x=%E2%82%AC#%2F"),
    ("https://example.org?q", "https://example.org?q"),
    ("https://example.org#top", "https://example.org#top"),
    ("https://medium.example/@someone", "https://medium.example/@someone"),
    (
        "https://example.org/p?next=https://other.example/",
        "https://example.org/p?next=https://other.example/",
    ),
    ("https://" + "a" * 63 + ".example/", "https://" + "a" * 63 + ".example/"),
    (GOOD + LONG_TAIL, GOOD + LONG_TAIL),
]

# White space, C0/C1 controls, DEL, bidi, zero-width and other invisible format characters.
FORBIDDEN_SAMPLE = list(
    " \t\n\r\x0b\x0c\x00\x1f\x7f\x80\x85\x9b\x9f\xa0\u1680\u180e\u2000\u200a\u200b\u200c"
    "\u200d\u200e\u200f\u2028\u2029\u202a\u202e\u202f\u205f\u2060\u2065\u2066\u2069\u3000"
    "\ufeff\u00ad"
)


@pytest.mark.parametrize(("url", "fragment"), HOSTILE)
def test_hostile_url_is_refused_with_its_reason(url: str, fragment: str) -> None:
    with pytest.raises(CommandError) as caught:
        validate_url(url)
    reason = caught.value.reason
    assert reason.startswith("URL refused: ")
    assert reason.endswith(".")
    assert reason.count(". ") == 0, "one sentence"
    assert fragment in reason


@pytest.mark.parametrize(("url", "stored"), ACCEPTED)
def test_accepted_url_is_stored_in_canonical_form(url: str, stored: str) -> None:
    assert validate_url(url) == stored
    assert validate_url(stored) == stored


def test_corpus_sizes() -> None:
    assert len(HOSTILE) >= 60
    assert len(ACCEPTED) >= 15
    assert len(GOOD + LONG_TAIL) == 2048


def _label(alphabet: str) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=1, max_size=12)


_LABELS = st.one_of(
    _label(string.ascii_letters + string.digits),
    st.tuples(_label(string.ascii_lowercase), _label("-"), _label(string.digits)).map("".join),
    _label(string.ascii_letters + "äöüßéèçñÄÖÜẞİıΣ"),
    _label("абвгдежзийклмнопрстуфхцчшщъыьэюяАБВ-"),
    _label("αβγδεζηθικλμνξοπρστυφχψωάέΣ"),
    _label("日本語のドメインあいうアイウー々"),
    _label("한국어도메인0123456789"),
    _label("xn--bcher-kva80ak6aa92e"),
)
_PATHS = st.text(alphabet="".join(map(chr, range(0x21, 0x7F))).replace("\\", ""), max_size=40)
_URLS = st.builds(
    lambda scheme, labels, port, sep, path: (
        f"{scheme}://{'.'.join(labels)}{'' if port is None else f':{port}'}{sep}{path}"
    ),
    st.sampled_from(["http", "https", "HTTP", "Https"]),
    st.lists(_LABELS, min_size=1, max_size=4),
    st.none() | st.integers(min_value=0, max_value=70000),
    st.sampled_from(["/", "?", "#"]),
    _PATHS,
)


def _outcome(url: str) -> str:
    """The stored URL, or the reason it was refused; any other exception propagates."""
    try:
        return validate_url(url)
    except CommandError as refusal:
        return refusal.reason


@given(st.one_of(_URLS, st.text().map(lambda s: "https://" + s)))
def test_what_is_stored_validates_to_itself(url: str) -> None:
    stored = _outcome(url)
    if not stored.startswith("URL refused: "):
        assert validate_url(stored) == stored
        assert stored.isascii()
        assert len(stored) <= 2048


@given(
    st.one_of(
        st.text(),
        st.text().map(lambda s: "http://" + s),
        st.text(alphabet=string.printable + "[]:@%.-äаα日").map(lambda s: "https://" + s),
        _URLS,
    )
)
def test_only_command_error_ever_escapes(text: str) -> None:
    outcome = _outcome(text)
    assert outcome.startswith(("http://", "https://", "URL refused: "))
    if outcome.startswith("URL refused: "):
        assert outcome.endswith(".")
        assert "\n" not in outcome


@given(
    st.sampled_from([url for pair in ACCEPTED for url in pair]),
    st.one_of(
        st.sampled_from(FORBIDDEN_SAMPLE),
        st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"]),
    ),
    st.data(),
)
def test_inserting_a_forbidden_character_anywhere_is_refused(
    url: str, forbidden: str, data: st.DataObject
) -> None:
    position = data.draw(st.integers(min_value=0, max_value=len(url)))
    with pytest.raises(CommandError, match=r"^URL refused: "):
        validate_url(url[:position] + forbidden + url[position:])
