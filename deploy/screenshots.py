"""What participants see, in a real web client: screenshots for the README.

Runs on demand (not part of the test command)::

    bash deploy/screenshots.sh            # writes docs/screenshots/*.png

It starts the quick start's private Prosody (deploy/localprosody.py) with XMPP over WebSocket
(Prosody's mod_websocket) and a folder served over HTTP on loopback, runs addinbot on a fresh
SQLite database, and plays the quick start's loop with real XMPP clients: the admin registers
an add-in and asks the bot into a room, the room's owner attaches it and pins it to the
subject. Then Converse.js (from the npm registry) in headless Chromium (Debian's package)
logs in as a new participant, joins the room and is welcomed privately; a screenshot is
taken of the room (its subject, with the add-in's tail, at the top) and of the private
message with the link.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from slixmpp import JID

from bot.config import XmppSettings
from bot.xmpp.demo import ADDIN, DemoClient
from deploy.localprosody import Prosody

CONVERSE = "converse.js@14.0.0"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "demo"
ROOM = "lobby@conference.localhost"
ROOT = Path(__file__).resolve().parent.parent
STEP_TIMEOUT_S = 30.0

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>addinbot in Converse.js</title>
<link rel="stylesheet" href="dist/converse.min.css">
<script type="module" src="dist/converse.min.js"></script>
</head>
<body class="converse-fullscreen">
<script type="module">
converse.initialize(__CONFIG__);
</script>
</body>
</html>
"""


def fetch_converse(web: Path) -> None:
    """Converse.js's built files from the npm registry, into ``web/dist`` (kept between runs)."""
    if (web / "dist" / "converse.min.js").exists():
        return
    web.mkdir(parents=True, exist_ok=True)
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed (apt-get install -y npm)")
    packed = subprocess.run(
        [npm, "pack", "--silent", CONVERSE],
        cwd=web,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    with tarfile.open(web / packed) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("package/dist/")]
        archive.extractall(web, members=members, filter="data")
    (web / "package" / "dist").rename(web / "dist")
    (web / packed).unlink()
    shutil.rmtree(web / "package")


def write_page(web: Path, http_port: int, user: str) -> str:
    config = {
        "websocket_url": f"ws://127.0.0.1:{http_port}/xmpp-websocket",
        "discover_connection_methods": False,
        "authentication": "login",
        "auto_login": True,
        "jid": f"{user}@localhost",
        "password": PASSWORD,
        "auto_join_rooms": [ROOM],
        "nickname": user,
        "view_mode": "fullscreen",
        "i18n": "en",
        "theme": "concord",
        "show_desktop_notifications": False,
        "play_sounds": False,
        "allow_non_roster_messaging": True,
        "assets_path": "dist/",
        "clear_cache_on_logout": True,
    }
    page = web / "index.html"
    page.write_text(PAGE.replace("__CONFIG__", json.dumps(config, indent=1)), encoding="utf-8")
    return f"http://127.0.0.1:{http_port}/files/index.html"


def write_bot_config(work: Path, port: int) -> Path:
    secret = work / "password"
    secret.write_text(PASSWORD, encoding="utf-8")
    secret.chmod(0o600)
    path = work / "addinbot.toml"
    path.write_text(
        f"""[xmpp]
jid = "addinbot@localhost"
password_file = "{secret}"
host = "127.0.0.1"
port = {port}
tls = "plain"
nick = "AddinBot"

[store]
url = "sqlite:///{work}/addinbot.db"

[roles]
admins = ["admin@localhost"]

[pools]
names = ["conference.localhost"]
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


@contextmanager
def running_bot(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "addinbot"), "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while "connected as" not in log.read_text("utf-8", "replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"addinbot did not connect:\n{log.read_text()}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def set_the_room_up(settings: XmppSettings) -> None:
    """The admin registers the add-in and asks the bot in; the owner attaches and pins it."""
    admin = DemoClient("admin@localhost", PASSWORD, settings)
    owner = DemoClient("alice@localhost", PASSWORD, settings)
    await admin.online(settings)
    await owner.online(settings)
    bot = JID("addinbot@localhost")
    try:
        name, url = ADDIN
        # A subject change has no body: slixmpp gives it as groupchat_subject, not message.
        subjects: asyncio.Queue[str] = asyncio.Queue()
        owner.add_event_handler(
            "groupchat_subject", lambda m: subjects.put_nowait(m["subject"] or "")
        )
        await owner.join(ROOM, "alice")
        owner.plugin["xep_0045"].set_subject(JID(ROOM), "Trading desk: prices and news")
        for text in (f'register "{name}" {url}', f"join {ROOM}"):
            admin.send_message(mto=bot, mbody=text, mtype="chat")
            await admin.next(lambda m: m["from"].bare == bot.bare)
        await _wait_for_bot_in_room(owner)
        # What README "What room owners give the bot" asks: the admin affiliation, so that
        # the bot, a moderator, may keep the add-in on the subject.
        await owner.plugin["xep_0045"].set_affiliation(JID(ROOM), "admin", jid=bot)
        owner.send_message(mto=JID(ROOM), mbody=f'!addin attach "{name}"', mtype="groupchat")
        said = await owner.next(lambda m: m["from"] == JID(f"{ROOM}/AddinBot"))
        print(f"attach → {said['body']}")
        if said["type"] != "groupchat":  # what changes the room is said in the room
            raise RuntimeError(f"the bot refused the attach: {said['body']}")
        owner.send_message(mto=JID(ROOM), mbody="!addin pin on", mtype="groupchat")
        subject = await asyncio.wait_for(_subject_with(subjects, name), STEP_TIMEOUT_S)
        print(f"pin on → the subject is now: {subject}")
        print("the room is set up: add-in attached and pinned to the subject")
    finally:
        admin.disconnect()
        owner.disconnect()


async def _subject_with(subjects: asyncio.Queue[str], text: str) -> str:
    while text not in (subject := await subjects.get()):
        pass
    return subject


async def _wait_for_bot_in_room(client: DemoClient) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while True:
        presence = await asyncio.wait_for(client.presences.get(), deadline - time.monotonic())
        if presence["from"].bare == ROOM and presence["from"].resource == "AddinBot":
            return


def take(url: str, out: Path) -> list[Path]:
    """Converse.js logs in as a new participant and joins the room: two pictures."""
    from playwright.sync_api import sync_playwright  # the on-demand tool's own dependency

    timeout_ms = STEP_TIMEOUT_S * 1000
    room, private = out / "room.png", out / "private-link.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 640})
        page.on("pageerror", lambda exc: print("Converse.js:", exc, file=sys.stderr))
        page.goto(url)
        # The room's subject, at the top: the part people wrote, then the bot's tail.
        subject = page.locator(".chat-head__desc")
        subject.get_by_text(ADDIN[0]).wait_for(timeout=timeout_ms)
        page.screenshot(path=str(room))
        # The welcome came as a private message through the room: open the bot's occupant.
        page.locator(".occupant-list").get_by_text("AddinBot").click()
        page.get_by_text("This room's add-in is").wait_for(timeout=timeout_ms)
        page.screenshot(path=str(private))
        browser.close()
    return [room, private]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/screenshots.py", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cache = ROOT / "run" / "screenshots"
    fetch_converse(cache / "web")
    work = Path(tempfile.mkdtemp(prefix="addinbot-shots-"))
    server = Prosody(work / "prosody", web_root=cache / "web")
    with server:
        for user in ("addinbot", "admin", "alice", "bob", "carol"):
            server.register(user, PASSWORD)
        settings = XmppSettings(
            jid="addinbot@localhost",
            password=PASSWORD,
            host="127.0.0.1",
            port=server.port,
            tls="plain",
            nick="AddinBot",
        )
        with running_bot(write_bot_config(work, server.port), work / "addinbot.log"):
            asyncio.run(set_the_room_up(settings))
            url = write_page(cache / "web", server.http_port, "carol")
            for path in take(url, args.out):
                print(f"wrote {path.relative_to(ROOT)}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder kept: {work}")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
