"""`addinbot check`: is this configuration ready to run?

The configuration is read and validated (by the command line, before this runs), then the
database is opened and its migration state reported, then the XMPP server is asked to
authenticate the bot. What works is said on standard output; each problem is one line on
standard error. Exit 0 when everything works, 2 for a configuration problem, 1 when the
database or the XMPP server cannot be reached or refuses the bot.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from bot.config import ConfigError, Settings, check_runnable, exposed_secrets
from store import Store
from store.database import missing_sqlite_file, shown

EXIT_OK = 0
EXIT_UNREACHABLE = 1
EXIT_CONFIG = 2
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Finding:
    ok: bool
    line: str


def check(
    settings: Settings, *, timeout: float = DEFAULT_TIMEOUT_S, config_file: Path | None = None
) -> int:
    problems = check_runnable(settings)
    password = ""
    if settings.xmpp is not None and not problems:
        try:
            password = settings.xmpp.secret()
        except (ConfigError, OSError, UnicodeDecodeError) as exc:
            problems.append(f"config: xmpp.password_file: {_reason(exc)}")
        else:
            if not password:
                problems.append("config: xmpp: the password is empty")
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    print("config: ok")
    for warning in exposed_secrets(settings, config_file):  # said, but not a failure
        print(warning, file=sys.stderr)
    _quiet_libraries()
    findings = [database_finding(settings.store.url, timeout)]
    findings.append(asyncio.run(xmpp_finding(settings, password, timeout)))
    for finding in findings:
        print(finding.line, file=sys.stdout if finding.ok else sys.stderr, flush=True)
    return EXIT_OK if all(f.ok for f in findings) else EXIT_UNREACHABLE


# --- the database --------------------------------------------------------------------------


def database_finding(url: str, timeout: float) -> Finding:
    missing = missing_sqlite_file(url)
    where = shown(url)
    if missing is not None:
        folder = missing.parent
        if not folder.is_dir():
            return Finding(False, f"database: {where}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            return Finding(False, f"database: {where}: the folder {folder} is not writable")
        return Finding(True, f"database: ok: {where} does not exist yet; `addinbot run` "
                             "(or `addinbot db upgrade`) creates it")
    store = Store.open(url, connect_timeout=timeout)
    try:
        revision, head = store.schema()
    except Exception as exc:
        return Finding(False, f"database: cannot use {where}: {_reason(exc)}")
    finally:
        store.close()
    if revision is None:
        state = "no schema yet; `addinbot run` (or `addinbot db upgrade`) creates it"
    elif revision == head:
        state = f"schema at revision {revision} (the latest)"
    else:
        state = (f"schema at revision {revision}, this version needs {head}; `addinbot run` "
                 "(or `addinbot db upgrade`) migrates it")
    return Finding(True, f"database: ok: {where}, {state}")


# --- the XMPP server -----------------------------------------------------------------------


async def xmpp_finding(settings: Settings, password: str, within_s: float) -> Finding:
    from bot.xmpp.probe import probe  # slixmpp is loaded only when needed

    xmpp = settings.xmpp
    assert xmpp is not None  # noqa: S101 - checked by the caller
    problem = await probe(xmpp, password, within_s)
    if problem is not None:
        return Finding(False, f"xmpp: {problem}")
    return Finding(
        True, f"xmpp: ok: authenticated as {xmpp.jid} at {xmpp.server_host}:{xmpp.server_port} "
              f"(tls = \"{xmpp.tls}\")"
    )


# --- helpers -------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    """The first line of what went wrong, without the driver's SQL and background links."""
    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(inner).__name__}: {first}"[:300] if first else type(inner).__name__


def _quiet_libraries() -> None:
    """slixmpp logs each failed step itself; the findings already say it, once."""
    logging.getLogger().addHandler(logging.NullHandler())
    logging.getLogger("slixmpp").setLevel(logging.CRITICAL)
