"""The command line, fit for scripts: every add-in at a shell, `--json` on every read with
the shape the README documents, add-ins in bulk (export, import: checked as a whole, one
transaction, audited), refusals in the command line's own words, a quiet end on a closed
pipe, `--version`, and a config without pools refused alike by every command before
anything is made. On SQLite and PostgreSQL where the store is involved."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot import addins, cli
from bot.commands.direct import DIRECT
from bot.values import Actor
from store import Store

POOL = "conference.localhost"
OTHER = "chat.localhost"
ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
OPS = Actor("ops", "cli")


def config_for(tmp_path: Path, url: str, pools: tuple[str, ...] = (POOL,)) -> str:
    path = tmp_path / "addinbot.toml"
    listed = ", ".join(f'"{pool}"' for pool in pools)
    path.write_text(f'[store]\nurl = "{url}"\n[pools]\nnames = [{listed}]\n', encoding="utf-8")
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def registry(store: Store, pools: tuple[str, ...] = (POOL, OTHER)) -> list[tuple[str, str, str]]:
    return [(e.pool, e.name, e.url) for e in addins.all_addins(store, pools=pools)]


# --- reads ---------------------------------------------------------------------------------


def test_addin_list_prints_every_add_in_at_a_shell(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for number in range(45):  # more than two chat pages
        addins.register(store, OPS, pool=POOL, name=f"T{number:02}",
                        url=f"https://t{number}.example.org/")
    config = config_for(tmp_path, store.url)
    code, out, err = run(capsys, "addin", "list", "--config", config)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"{POOL} (45 add-ins):"
    assert lines[1:] == [
        f"• T{n:02} — https://t{n}.example.org/ (0 rooms)" for n in range(45)
    ]
    with pytest.raises(SystemExit):  # no pages at a shell, so none to ask for
        cli.main(["addin", "list", "--page", "2", "--config", config])


def test_every_read_on_the_command_line_takes_json(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each read declared with `data=` (addin list, addin show, room list, room managers,
    audit) has --json; and those are all the reads the command line has. `room managers`
    with --add or --remove changes them first, then prints them."""
    reads = {c.cli for c in DIRECT.commands.values() if c.cli is not None and c.data is not None}
    assert reads == {("addin", "list"), ("addin", "show"), ("room", "list"),
                     ("room", "managers"), ("audit",)}
    changes = {c.cli for c in DIRECT.commands.values() if c.cli is not None and c.data is None}
    assert changes == {("addin", "register"), ("addin", "update"), ("addin", "unregister"),
                       ("room", "attach"), ("room", "detach")}

    config = config_for(tmp_path, store.url, (POOL, OTHER))
    room = f"dev@{POOL}"
    assert run(capsys, "addin", "register", "Wiki", "https://wiki.example.org/", "--pool",
               POOL, "--config", config)[0] == 0
    assert run(capsys, "addin", "register", "Ｗiki", "https://w.example.org/", "--pool",
               OTHER, "--config", config)[0] == 0
    assert run(capsys, "room", "attach", room, "wiki", "--config", config)[0] == 0

    def read(*words: str) -> Any:
        code, out, err = run(capsys, *words, "--json", "--config", config)
        assert (code, err) == (0, "")
        return json.loads(out)

    assert read("addin", "list") == [
        {"pool": OTHER, "name": "Ｗiki", "url": "https://w.example.org/", "rooms": 0},
        {"pool": POOL, "name": "Wiki", "url": "https://wiki.example.org/", "rooms": 1},
    ]
    assert read("addin", "list", "--pool", OTHER) == [
        {"pool": OTHER, "name": "Ｗiki", "url": "https://w.example.org/", "rooms": 0},
    ]
    shown = read("addin", "show", "WIKI", "--pool", POOL)
    assert set(shown) == {"pool", "name", "url", "registered_by", "registered_at", "rooms"}
    assert shown["name"] == "Wiki"
    assert shown["rooms"] == [room]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown["registered_at"])
    assert read("room", "list") == [{
        "room": room, "pool": POOL, "joined": False, "stopped_reason": None, "addin": "Wiki",
        "url": "https://wiki.example.org/",
    }]
    logged = read("audit", "2")
    assert [entry["action"] for entry in logged] == ["attach", "register"]  # newest first
    assert set(logged[0]) == {"id", "at", "actor", "via", "action", "pool", "addin", "room",
                              "detail"}
    assert logged[0]["via"] == "cli"
    assert logged[0]["room"] == room
    assert logged[1]["room"] is None
    assert logged[0]["id"] > logged[1]["id"]
    assert read("room", "managers", room) == {"room": room, "managers": []}
    assert read("room", "managers", room, "--add", "Bob@Localhost") == {
        "room": room, "managers": ["bob@localhost"]}
    assert read("room", "managers", room, "--add", "carol@localhost", "--remove",
                "bob@localhost") == {"room": room, "managers": ["carol@localhost"]}
    assert read("room", "managers", room) == {"room": room, "managers": ["carol@localhost"]}
    code, out, err = run(capsys, "room", "managers", room, "--add", "not a jid", "--json",
                         "--config", config)
    assert (code, out) == (1, "")
    assert err.strip()
    assert read("room", "managers", room) == {"room": room, "managers": ["carol@localhost"]}
    made = sorted(e["action"] for e in read("audit", "4"))
    assert made == ["attach", "manager-add", "manager-add", "manager-remove"]  # none refused
    # The README documents each shape, under the same command, with the same fields.
    documented = README.split("### `--json`: what reads print", 1)[1].split("\n### ", 1)[0]
    for words, fields in ((("addin", "list"), {"pool", "name", "url", "rooms"}),
                          (("addin", "show"), set(shown)), (("room", "list"), set(
                              read("room", "list")[0])), (("audit",), set(logged[0])),
                          (("room", "managers"), {"room", "managers"})):
        spelled = " ".join(words)
        part = documented.split(f"`addinbot {spelled}", 1)[1].split("`addinbot ", 1)[0]
        assert all(f"`{field}`" in part for field in fields), (words, fields)
        example = part.split("```json\n", 1)[1].split("```", 1)[0]
        parsed = json.loads(example)
        assert set(parsed[0] if isinstance(parsed, list) else parsed) == fields, words


# --- in bulk -------------------------------------------------------------------------------


def fill(store: Store) -> None:
    addins.register(store, OPS, pool=POOL, name="Stock Ticker", url="https://stocks.example.org/")
    addins.register(store, OPS, pool=POOL, name="Wiki, \"the\" one",
                    url="https://wiki.example.org/a?b=c,d")
    addins.register(store, OPS, pool=OTHER, name="Чат", url="https://chat.example.org/")
    addins.attach(store, OPS, room=f"dev@{POOL}", name="Stock Ticker")


@pytest.mark.parametrize("form", ["json", "csv"])
def test_export_then_import_into_an_empty_store_gives_the_same_registry(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    fill(store)
    config = config_for(tmp_path, store.url, (POOL, OTHER))
    code, out, err = run(capsys, "addin", "export", "--format", form, "--config", config)
    assert (code, err) == (0, "")
    exported = tmp_path / f"addins.{form}"
    exported.write_text(out, encoding="utf-8")

    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()
    empty_url = f"sqlite:///{empty_folder}/new.db"
    empty = config_for(empty_folder, empty_url, (POOL, OTHER))
    code, out, err = run(capsys, "addin", "import", str(exported), "--config", empty)
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "Registered 3, updated 0; 0 unchanged."
    fresh = Store.open(empty_url)
    try:
        assert registry(fresh) == registry(store)
        # Importing the same file again changes nothing.
        code, out, _err = run(capsys, "addin", "import", str(exported), "--config", empty)
        assert (code, out) == (0, "Registered 0, updated 0; 3 unchanged.\n")
        assert [e.action for e in addins.audit(fresh, limit=10)] == ["register"] * 3
    finally:
        fresh.close()


def test_export_of_one_pool_and_its_shape(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(store)
    config = config_for(tmp_path, store.url, (POOL, OTHER))
    code, out, _err = run(capsys, "addin", "export", "--pool", OTHER, "--config", config)
    assert code == 0
    assert out == (
        '[\n  {"pool": "chat.localhost", "name": "Чат", "url": "https://chat.example.org/"}\n]\n'
    )


def test_an_import_is_audited_one_row_a_change_and_tells_rooms_once(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(store)
    before = addins.last_audit_id(store)
    config = config_for(tmp_path, store.url, (POOL, OTHER))
    source = tmp_path / "in.csv"
    source.write_text(
        "name,url,pool\n"
        f"stock ticker,https://stocks2.example.org/,{POOL}\n"  # a new URL for an add-in in use
        f"Чат,https://chat.example.org/,{OTHER}\n"  # unchanged
        f"New One,https://new.example.org/,{POOL}\n",
        encoding="utf-8",
    )
    code, dry, err = run(capsys, "addin", "import", str(source), "--dry-run", "--config", config)
    assert (code, err) == (0, "")
    assert dry.splitlines() == [
        f"update “Stock Ticker” in {POOL}: https://stocks.example.org/ -> "
        "https://stocks2.example.org/",
        f"register “New One” in {POOL}: https://new.example.org/",
        "Would register 1, update 1; 1 unchanged. Nothing was changed (--dry-run).",
    ]
    assert addins.last_audit_id(store) == before  # a dry run changes nothing, audits nothing

    code, out, err = run(capsys, "addin", "import", str(source), "--config", config)
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "Registered 1, updated 1; 1 unchanged."
    # What the running bot's follower reads: one row per change, the URL change carrying the
    # room that uses it, to be told once.
    changes = addins.changes_to_announce(store, before)
    assert [(c.entry.action, c.entry.addin, c.entry.via) for c in changes] == [
        ("update-url", "Stock Ticker", "cli"), ("register", "New One", "cli"),
    ]
    assert [room.jid for room in changes[0].rooms] == [f"dev@{POOL}"]
    assert changes[1].rooms == ()


def test_add_ins_given_one_url_by_an_import_tell_each_room_once(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(store)
    addins.attach(store, OPS, room=f"ops@{POOL}", name="Wiki, \"the\" one")
    before = addins.last_audit_id(store)
    source = tmp_path / "in.csv"
    source.write_text('name,url\nStock Ticker,https://one.example.org/\n'
                      '"Wiki, ""the"" one",https://one.example.org/\n', encoding="utf-8")
    config = config_for(tmp_path, store.url, (POOL, OTHER))
    assert run(capsys, "addin", "import", str(source), "--pool", POOL, "--config", config)[0] == 0
    changes = addins.changes_to_announce(store, before)
    told = [(room.jid, room.addin) for change in changes for room in change.rooms]
    assert sorted(told) == [(f"dev@{POOL}", "Stock Ticker"), (f"ops@{POOL}", 'Wiki, "the" one')]


def test_a_bad_row_names_its_line_and_nothing_changes(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(store)
    before = registry(store)
    config = config_for(tmp_path, store.url, (POOL, OTHER))
    source = tmp_path / "in.json"
    source.write_text(
        "[\n"
        f'  {{"pool": "{POOL}", "name": "Fine", "url": "https://fine.example.org/"}},\n'
        f'  {{"pool": "{POOL}", "name": "Bad", "url": "ftp://bad.example.org/"}},\n'
        f'  {{"pool": "{POOL}", "name": "Ѕtock Ticker", "url": "https://x.example.org/"}},\n'
        '  {"pool": "elsewhere.org", "name": "Far", "url": "https://far.example.org/"},\n'
        f'  {{"pool": "{POOL}", "name": "fine", "url": "https://fine2.example.org/"}},\n'
        f'  {{"pool": "{POOL}", "name": "Odd", "url": "https://o.example.org/", "colour": 1}}\n'
        "]\n",
        encoding="utf-8",
    )
    code, out, err = run(capsys, "addin", "import", str(source), "--config", config)
    assert (code, out) == (cli.EXIT_REFUSED, "")
    said = err.splitlines()
    assert [line.split(": ", 1)[0] for line in said] == [
        f"{source}:3", f"{source}:4", f"{source}:5", f"{source}:6", f"{source}:7",
        f"{source}",
    ]
    assert "http" in said[0]
    assert "mixes scripts" in said[1]  # Cyrillic Ѕ with Latin
    assert "elsewhere.org is not served" in said[2]
    assert "already on line 2" in said[3]
    assert "colour" in said[4]
    assert said[-1] == f"{source}: nothing was imported."
    assert registry(store) == before

    # A name that looks like a stored add-in's, found inside the transaction: still by line,
    # still nothing changed (not even the good row before it).
    source.write_text(
        "pool,name,url\n"
        f"{POOL},Fine,https://fine.example.org/\n"
        f"{OTHER},Чaт,https://x.example.org/\n",  # Latin a among Cyrillic: mixes scripts
        encoding="utf-8",
    )
    source = source.rename(tmp_path / "in.csv")
    code, _out, err = run(capsys, "addin", "import", str(source), "--config", config)
    assert code == cli.EXIT_REFUSED
    assert err.splitlines()[0].startswith(f"{source}:3: ")
    source.write_text(f"pool,name,url\n{POOL},Fine,https://fine.example.org/\n"
                      f"{OTHER},ЧАТ,https://x.example.org/\n", encoding="utf-8")
    code, out, err = run(capsys, "addin", "import", str(source), "--dry-run", "--config", config)
    assert (code, out) == (0, "register “Fine” in conference.localhost: https://fine.example.org/"
                              "\nupdate “Чат” in chat.localhost: https://chat.example.org/ -> "
                              "https://x.example.org/\n"
                              "Would register 1, update 1; 0 unchanged. Nothing was changed "
                              "(--dry-run).\n")
    assert registry(store) == before


def test_a_look_alike_of_a_stored_add_in_is_refused_by_line_in_the_transaction(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(store)
    before = registry(store)
    config = config_for(tmp_path, store.url, (POOL, OTHER))
    source = tmp_path / "in.csv"
    # “St0ck Ticker” (a zero for the o) has the skeleton of “Stock Ticker”: a look-alike,
    # which only the store knows of.
    source.write_text("name,url\nFine,https://fine.example.org/\nSt0ck Ticker,https://x.org/\n",
                      encoding="utf-8")
    code, _out, err = run(capsys, "addin", "import", str(source), "--pool", POOL,
                          "--config", config)
    assert code == cli.EXIT_REFUSED, err
    assert err.splitlines() == [
        f"{source}:3: “St0ck Ticker” looks like “Stock Ticker”, which already exists in {POOL}.",
        f"{source}: nothing was imported.",
    ]
    assert registry(store) == before
    assert addins.audit(store, limit=1)[0].addin == "Stock Ticker"  # the attach, still last


@pytest.mark.parametrize(("form", "text", "where", "why"), [
    ("json", "", 1, "array"),
    ("json", '{"name": "x"}', 1, "array"),
    ("json", '[\n  {"name": "x", "url": "https://x.org/"},\n  {"name": \n', 4, "Not JSON"),
    ("json", '[{"name": "A", "url": "https://a.org/"}] trailing', 1, "more after"),
    ("json", '[\n  "just text"\n]', 2, "object"),
    ("json", '[\n  {"name": "A"}\n]', 2, "“url” is missing"),
    ("json", '[\n  {"name": 5, "url": "https://a.org/"}\n]', 2, "must be text"),
    ("csv", "", 1, "empty"),
    ("csv", "name,link\nA,https://a.org/\n", 1, "Unknown field “link”"),
    ("csv", "name,url\nA,https://a.org/,extra\n", 2, "3 fields"),
    ("csv", 'name,url\n"A\nB",https://a.org/\nC,notaurl\n', 2, "control"),  # and line 4
])
def test_a_file_that_is_not_a_list_of_add_ins_is_refused_by_line(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str, text: str,
    where: int, why: str,
) -> None:
    config = config_for(tmp_path, store.url)
    source = tmp_path / f"in.{form}"
    source.write_text(text, encoding="utf-8")
    code, _out, err = run(capsys, "addin", "import", str(source), "--config", config)
    assert code == cli.EXIT_REFUSED
    assert err.splitlines()[0].startswith(f"{source}:{where}: "), err
    assert why in err.splitlines()[0]
    if "notaurl" in text:  # a row over two lines: the next one is still counted right
        assert err.splitlines()[1].startswith(f"{source}:4: URL refused")
    assert registry(store) == []


def test_import_reads_standard_input_and_the_format_is_chosen(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    config = config_for(tmp_path, store.url)
    monkeypatch.setattr(sys, "stdin", io.StringIO("name,url\nA,https://a.example.org/\n"))
    code, out, _err = run(capsys, "addin", "import", "-", "--format", "csv", "--config", config)
    assert (code, out.splitlines()[-1]) == (0, "Registered 1, updated 0; 0 unchanged.")
    source = tmp_path / "addins.txt"
    source.write_text("[]", encoding="utf-8")
    code, _out, err = run(capsys, "addin", "import", str(source), "--config", config)
    assert code == cli.EXIT_REFUSED
    assert "--format" in err
    assert run(capsys, "addin", "import", str(source), "--format", "json", "--config",
               config)[:2] == (0, "Registered 0, updated 0; 0 unchanged.\n")
    assert registry(store) == [(POOL, "A", "https://a.example.org/")]


# --- refusals in the command line's words ------------------------------------------------


def test_refusals_name_the_command_lines_words(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path, store.url, (POOL, OTHER))
    addins.register(store, OPS, pool=POOL, name="Wiki", url="https://wiki.example.org/")
    addins.attach(store, OPS, room=f"dev@{POOL}", name="Wiki")
    code, _out, err = run(capsys, "addin", "unregister", "Wiki", "--pool", POOL,
                          "--config", config)
    assert code == cli.EXIT_REFUSED
    assert err == (f"“Wiki” is used by 1 room: dev@{POOL}. Detach it first, or add --force to "
                   "detach it from them.\n")
    code, _out, err = run(capsys, "addin", "register", "X", "https://x.example.org/",
                          "--config", config)
    assert err == f"Name the pool (--pool POOL): this bot serves {POOL}, {OTHER}.\n"
    code, _out, err = run(capsys, "addin", "show", "Wiki", "--config", config)
    assert "--pool POOL" in err
    for words in (("addin", "import", "-"), ("addin", "export")):
        code, _out, err = run(capsys, *words, "--pool", "nope.org", "--config", config)
        assert code == cli.EXIT_REFUSED
        assert err == f"Pool nope.org is not served here; served: {POOL}, {OTHER}.\n"


# --- pipes and the version ---------------------------------------------------------------


def test_a_closed_pipe_ends_the_output_quietly_and_version(tmp_path: Path) -> None:
    from bot.values import Row  # imported here: this file's other tests run on older code

    url = f"sqlite:///{tmp_path}/big.db"
    big = Store.open(url)
    big.upgrade()
    addins.import_rows(big, OPS, [
        Row(n, POOL, f"Add-in {n:05}", f"https://a{n}.example.org/{'x' * 60}")
        for n in range(3000)  # ~330 kB of list: more than a pipe holds
    ])
    big.close()
    config = config_for(tmp_path, url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADDINBOT_")}
    for words in ("addin list", "addin list --json", "addin export", "addin export --format csv",
                  "audit 3000"):
        done = subprocess.run(
            ["bash", "-c", f'"$0" -m bot {words} --config "$1" | head -1; '
                           'echo "status=${PIPESTATUS[0]}"', sys.executable, config],
            capture_output=True, text=True, timeout=120, cwd=ROOT, env=env, check=False,
        )
        assert done.stderr == "", done.stderr
        first, status = done.stdout.splitlines()
        assert first in ("[", f"{POOL} (3000 add-ins):", "pool,name,url") or first.startswith(
            "20"), first
        assert status == "status=0", (words, done.stdout)
    done = subprocess.run([sys.executable, "-m", "bot", "--version"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, check=False)
    assert (done.returncode, done.stdout) == (
        0, f"addinbot {importlib.metadata.version('addinbot')}\n"
    )


# --- a config without pools -----------------------------------------------------------------


@pytest.mark.parametrize("words", [
    ["check"], ["run"], ["db", "upgrade"], ["addin", "list"], ["addin", "list", "--json"],
    ["addin", "register", "A", "https://a.example.org/"], ["addin", "export"],
    ["addin", "import", "-"], ["room", "list"], ["audit"],
    ["demo", "--admin", "a@x.org", "--manager", "b@x.org", "--participant", "c@x.org",
     "--room", "r@conference.x.org"],
])
def test_a_config_without_pools_is_refused_alike_and_nothing_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], words: list[str]
) -> None:
    folder = tmp_path / "here"
    folder.mkdir()
    config = folder / "addinbot.toml"
    config.write_text(
        '[xmpp]\njid = "addinbot@localhost"\npassword = "pw"\nhost = "127.0.0.1"\n'
        f'tls = "plain"\n[store]\nurl = "sqlite:///{folder}/state/addinbot.db"\n'
        f'[metrics]\nlisten = "127.0.0.1:0"\n', encoding="utf-8",
    )
    config.chmod(0o600)
    code, out, err = run(capsys, *words, "--config", str(config))
    assert (code, out) == (cli.EXIT_USAGE, "")
    assert err == "config: pools.names: name at least one MUC service the bot serves\n"
    assert sorted(p.name for p in folder.rglob("*")) == ["addinbot.toml"]
