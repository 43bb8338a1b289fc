"""The one gate for add-in URLs: what a room announces to every participant.

`validate_url` accepts only plain `http`/`https` URLs with a host, and returns the exact text to
store, which is also exactly the text announced. Anything else raises `CommandError` with one
sentence starting "URL refused: ". Because the link is shown to a whole room it is a phishing
target, so the rules are strict: the raw text may hold no white space, control, bidirectional,
zero-width or compatibility (NFKC-unstable) character; no user name or password; international
host names are stored in their ASCII (punycode) form, one label at a time, and a label that mixes
scripts or spells a Latin-looking name in another script is refused, even when pre-encoded.
The scheme and host are lowercased; the path, query and fragment are kept byte for byte.

International labels are checked and encoded by the `idna` package (IDNA 2008, RFC 5891-5893:
the code points a label may hold, their context rules, the bidi rule, punycode); their scripts
are the Unicode Script property (through `disarm`, which the add-in names use too).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

import disarm
import idna

from bot.errors import CommandError

__all__ = ["validate_url"]

_MAX_LENGTH = 2048
_MAX_HOST = 253
_MAX_LABEL = 63
_SPACE_CATEGORIES = frozenset({"Zs", "Zl", "Zp"})
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf"})
# Zero-width, bidirectional and invisible format code points (most are also category Cf).
_INVISIBLE = frozenset(
    {0xFEFF, 0x180E, *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x206A)}
)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_LDH = re.compile(r"[a-z0-9-]+")
_PORT = re.compile(r"[0-9]+")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")  # what browsers would read as IPv4
_QUAD_PART = re.compile(r"0|[1-9][0-9]{0,2}")
# One script per label, except the scripts of Japanese and of Korean writing with Han.
_SCRIPT_MIXES = (frozenset({"HAN", "HIRAGANA", "KATAKANA"}), frozenset({"HAN", "HANGUL"}))
# Lowercase letters that pass for Latin ones; a label made only of them imitates a Latin name
# (the sets browsers use for "whole-script confusables" under a Latin top-level domain: UTS
# #39's confusable skeletons would refuse real words such as "москва" too).
_LATIN_LOOKALIKES = {
    "CYRILLIC": frozenset("аеһіјӏорԁԛѕԝхусъьҽпгѵѡ"),
    "GREEK": frozenset("αικνορτυχ"),
    "ARMENIAN": frozenset("հոսօզց"),
}


def validate_url(raw: str) -> str:
    """Return the canonical form of `raw` to store and announce, or raise `CommandError`."""
    _check_characters(raw)
    scheme, authority, rest = _split(raw)
    if "@" in authority:
        raise _refused("a user name or password part is not allowed")
    if not all("!" <= ch <= "~" for ch in rest):
        raise _refused("it contains non-ASCII characters outside the host name")
    host, port = _split_authority(authority)
    url = f"{scheme}://{host}{'' if port is None else ':' + port}{rest}"
    if len(url) > _MAX_LENGTH:  # an encoded international host is longer than its raw form
        raise _refused(f"it is longer than {_MAX_LENGTH} characters once its host is encoded")
    return url


def _refused(why: str) -> CommandError:
    return CommandError(f"URL refused: {why}.")


def _check_characters(raw: str) -> None:
    if len(raw) > _MAX_LENGTH:
        raise _refused(f"it is longer than {_MAX_LENGTH} characters")
    if any(ch.isspace() or unicodedata.category(ch) in _SPACE_CATEGORIES for ch in raw):
        raise _refused("it contains white space")
    if any(unicodedata.category(ch) in _CONTROL_CATEGORIES or ord(ch) in _INVISIBLE for ch in raw):
        raise _refused("it contains a control, bidirectional or zero-width character")
    if "\\" in raw:
        raise _refused("it contains a backslash")
    if any(unicodedata.normalize("NFKC", ch) != ch for ch in raw):
        raise _refused("it contains look-alike characters")


def _split(raw: str) -> tuple[str, str, str]:
    """Split into lowercased scheme, authority, and the rest (path, query, fragment)."""
    match = _SCHEME.match(raw)
    if match is None:
        raise _refused("it must start with http:// or https://")
    scheme = match.group(1).lower()
    if scheme not in ("http", "https"):
        raise _refused("only http and https are allowed")
    after = raw[match.end() :]
    if not after.startswith("//"):
        raise _refused("it must start with http:// or https://")
    authority = re.split(r"[/?#]", after[2:], maxsplit=1)[0]
    return scheme, authority, after[2 + len(authority) :]


def _split_authority(authority: str) -> tuple[str, str | None]:
    if authority.startswith("["):
        inner, bracket, after = authority[1:].partition("]")
        if not bracket or after[:1] not in ("", ":"):
            raise _refused("the IPv6 address is malformed")
        host, port = _ipv6_host(inner), (after[1:] if after else None)
    else:
        name, colon, port_text = authority.partition(":")
        host, port = _name_host(name), (port_text if colon else None)
    if port is not None and (_PORT.fullmatch(port) is None or not 1 <= int(port) <= 65535):
        raise _refused("the port must be a number from 1 to 65535")
    return host, None if port is None else str(int(port))


def _ipv6_host(inner: str) -> str:
    if "%" in inner:
        raise _refused("an IPv6 zone id is not allowed")
    try:
        address = ipaddress.IPv6Address(inner)
    except ValueError:
        raise _refused("the IPv6 address is malformed") from None
    return f"[{address.compressed}]"


def _name_host(name: str) -> str:
    """A DNS name (international labels in punycode) or a strict dotted-quad IPv4 address."""
    if not name:
        raise _refused("it has no host")
    labels = name.split(".")
    if "" in labels:
        raise _refused("the host name has an empty label or a trailing dot")
    latin_tld = labels[-1].isascii() and not labels[-1].lower().startswith("xn--")
    host_labels = [_ascii_label(label, latin_tld) for label in labels]
    if _NUMERIC_LABEL.fullmatch(host_labels[-1]) and not _is_dotted_quad(host_labels):
        raise _refused("the host looks like an IP address but is not a plain dotted quad")
    host = ".".join(host_labels)
    if len(host) > _MAX_HOST:
        raise _refused(f"the host name is longer than {_MAX_HOST} characters")
    return host


def _is_dotted_quad(labels: list[str]) -> bool:
    return len(labels) == 4 and all(
        _QUAD_PART.fullmatch(part) and int(part) <= 255 for part in labels
    )


def _ascii_label(label: str, latin_tld: bool) -> str:
    if not label.isascii():
        return _encode_label(label, latin_tld)
    label = label.lower()
    if _LDH.fullmatch(label) is None:
        raise _refused("the host name contains a character that is not allowed")
    if label.startswith("xn--"):
        return _check_encoded_label(label, latin_tld)
    _check_label_shape(label, label)
    return label


def _check_encoded_label(label: str, latin_tld: bool) -> str:
    """An "xn--" label must decode to a label these rules accept, and re-encode to itself."""
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        raise _refused("the host name has a malformed xn-- label") from None
    if decoded.isascii() or _encode_label(decoded, latin_tld) != label:
        raise _refused("the host name has a malformed xn-- label")
    return label


def _encode_label(label: str, latin_tld: bool) -> str:
    """NFC, lowercase, check characters and scripts, then punycode: 'bücher' -> 'xn--bcher-kva'."""
    text = unicodedata.normalize("NFC", unicodedata.normalize("NFC", label).lower())
    if text.isascii() or unicodedata.normalize("NFKC", text) != text:
        raise _refused("it contains look-alike characters")
    _check_label_shape(text, text)
    try:
        idna.check_label(text)  # IDNA 2008: code points, context rules, the bidi rule
    except idna.IDNABidiError:
        raise _refused("a host name label mixes writing directions") from None
    except idna.IDNAError:
        raise _refused("the host name contains a character that is not allowed") from None
    _check_scripts(text, latin_tld)
    try:
        encoded = idna.alabel(text).decode("ascii")
    except idna.IDNAError:  # checked above, so only its length is left to fail
        raise _refused(f"a host name label is longer than {_MAX_LABEL} characters") from None
    _check_label_shape(text, encoded)
    return encoded


def _check_label_shape(text: str, encoded: str) -> None:
    if text.startswith("-") or text.endswith("-"):
        raise _refused("a host name label starts or ends with a hyphen")
    if len(encoded) > _MAX_LABEL:
        raise _refused(f"a host name label is longer than {_MAX_LABEL} characters")


def _check_scripts(text: str, latin_tld: bool) -> None:
    """One script per label (Han may join Kana or Hangul); no Latin look-alikes if the TLD is."""
    scripts = _scripts(text)
    if len(scripts) > 1 and not any(scripts <= mix for mix in _SCRIPT_MIXES):
        raise _refused("a host name label mixes scripts")
    lookalikes = _LATIN_LOOKALIKES.get(next(iter(scripts)), frozenset()) if scripts else None
    if latin_tld and lookalikes and all(ch in lookalikes for ch in text if _scripts(ch)):
        raise _refused("a host name label imitates Latin letters with another script")


def _scripts(text: str) -> frozenset[str]:
    """The Unicode scripts of the letters (Common and Inherited ones, like digits, hyphens
    and combining marks, belong to none)."""
    return frozenset(script.name for script in disarm.detect_scripts(text))
