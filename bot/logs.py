"""Logging for `addinbot run`: plain text lines, or one JSON object per line (`[log] format`).

A JSON line holds `time` (UTC, ISO 8601), `level`, `logger`, `message` and, when there is
one, `exception` (the formatted traceback), so a log shipper needs no parsing rules.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in the text are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


class RedactSasl(logging.Filter):
    """slixmpp logs every stanza at debug level, authentication included: SASL PLAIN sends
    the password in base64. The content of SASL elements (and of any <password>) is
    replaced, whatever level an operator sets."""

    SECRET = re.compile(
        r"(<(auth|response|challenge|success|initial-response|additional-data|password)"
        r"\b[^>]*(?<!/)>)[^<]+(</\2>)"
    )

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("slixmpp"):
            message = record.getMessage()
            redacted = self.SECRET.sub(r"\1[redacted]\3", message)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


def formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(
    fmt: LogFormat = "text", level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Send every record to standard error (or `stream`) in the chosen format."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(RedactSasl())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    # slixmpp logs whole stanzas (authentication included) at debug level: keep it quiet.
    logging.getLogger("slixmpp").setLevel(logging.WARNING)
