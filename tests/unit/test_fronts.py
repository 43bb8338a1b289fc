"""One declaration, three front ends: a command declared once (with `cli=` and `form=`) is in
chat's help, in the Control Panel (discovery and fields) and on the command line, offered by
the same role rule; and no real declaration lacks the front ends it names."""

from __future__ import annotations

import functools
import getpass
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot import cli
from bot.commands.direct import DIRECT
from bot.commands.grammar import ADDIN, POOL, Signature, Word, WordKind
from bot.commands.registry import CommandSet, Dispatcher, Form, Request
from bot.config import Settings
from bot.rooms import SELF, Rooms
from bot.values import Actor, Place, Presence, Reply, Role, Sender
from bot.xmpp import panel
from store import Store

POOL_NAME = "conference.localhost"
ROOM = f"dev@{POOL_NAME}"
ADMIN = Sender("admin@localhost")
OWNER = Sender("olivia@localhost")
STRANGER = Sender("mallory@localhost")
LOUD = Word("loud", WordKind.FLAG, "Say it loudly")


def with_stats() -> CommandSet:
    """The real direct-message commands, and one more, declared once."""
    commands = CommandSet(Place.DIRECT)
    commands.commands.update(DIRECT.commands)

    @commands.command(
        "stats", "counts an add-in's uses", role=Role.ADMIN,
        signature=Signature(required=(ADDIN,), options=(POOL,), flags=(LOUD,)),
        cli=("addin", "stats"), form=Form("Count an add-in's uses"),
    )
    def stats(request: Request) -> Reply:
        said = f"{request.args['name']} in {request.pool()}, asked by {request.actor.who} via "
        return Reply(said + request.actor.via + ("!" if "loud" in request.args.flags else "."))

    return commands


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/addinbot.db")
    opened.upgrade()
    yield opened
    opened.close()


def owner_in_room() -> Rooms:
    """olivia owns ROOM, where the bot sees her real JID."""
    rooms = Rooms()
    rooms.joining(ROOM, "AddinBot")
    rooms.update(Presence(ROOM, "olivia", True, "owner", "moderator", OWNER.jid))
    rooms.update(Presence(ROOM, "AddinBot", True, codes=frozenset({SELF})))
    return rooms


async def test_a_command_declared_once_is_in_help_in_the_forms_and_on_the_command_line(
    store: Store, settings: Callable[..., Settings], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    commands = with_stats()
    config = settings(store={"url": store.url})

    # Chat: in the admin's help, and run by its words; not in a stranger's help.
    chat = Dispatcher(config, store, Rooms(), {Place.DIRECT: commands},
                      changed=lambda _changes: None)
    helped = await chat.run(Place.DIRECT, ADMIN, "help")
    assert helped is not None
    assert "stats <name> [pool <pool>] [loud] — counts an add-in's uses" in helped.text
    told = await chat.run(Place.DIRECT, ADMIN, "stats Wiki loud")
    assert told == Reply(f"Wiki in {POOL_NAME}, asked by admin@localhost via dm!")
    refused = await chat.run(Place.DIRECT, STRANGER, "stats Wiki")
    assert refused == Reply("Only an addinbot admin may run stats.")
    stranger_help = await chat.run(Place.DIRECT, STRANGER, "help")
    assert stranger_help is not None
    assert "stats" not in stranger_help.text

    # The forms: listed (disco) for the admin only, its fields from its words' kinds.
    forms = panel.Panel(commands)
    admin = panel.Requester("admin@localhost", True)
    operation = forms.operations["stats"]
    assert operation in forms.offered(admin)
    assert (operation.node, operation.name) == ("stats", "Count an add-in's uses")
    assert operation not in forms.offered(panel.Requester("mallory@localhost", False))
    assert operation.fields(config, store, admin) == [
        panel.Field("name", "Add-in", required=True),  # no add-ins yet: typed in
        panel.Field("loud", "Say it loudly", "boolean", value="0"),
    ]  # one pool: none to choose
    outcome = operation.run(config, store, Actor("admin@localhost", "adhoc"),
                            {"name": "Wiki", "loud": "1"})
    assert outcome.note == f"Wiki in {POOL_NAME}, asked by admin@localhost via adhoc!"

    # The command line: `addinbot addin stats NAME [--pool POOL] [--loud]`, as the local user.
    path = tmp_path / "addinbot.toml"
    path.write_text(
        f'[store]\nurl = "{store.url}"\n[roles]\nadmins = ["admin@localhost"]\n'
        f'[pools]\nnames = ["{POOL_NAME}"]\n'
    )
    code = cli.main(["addin", "stats", "Wiki", "--loud", "--config", str(path)],
                    commands=commands)
    out = capsys.readouterr()
    assert (code, out.err) == (0, "")
    assert out.out == f"Wiki in {POOL_NAME}, asked by {getpass.getuser()} via cli!\n"
    code = cli.main(["addin", "stats", "Wiki", "--pool", "elsewhere", "--config", str(path)],
                    commands=commands)
    assert code == cli.EXIT_REFUSED
    assert capsys.readouterr().err.count("\n") == 1  # chat's one line, on standard error
    with pytest.raises(SystemExit):
        cli.main(["addin", "stats", "Wiki", "--config", str(path)])  # not a real command


@pytest.mark.parametrize("sender", [ADMIN, OWNER, STRANGER])
async def test_help_and_the_forms_offered_follow_the_same_rule(
    sender: Sender, settings: Callable[..., Settings]
) -> None:
    rooms = owner_in_room()
    chat = Dispatcher(settings(), None, rooms, {Place.DIRECT: DIRECT},  # type: ignore[arg-type]
                      changed=lambda _changes: None)
    assert sender.jid is not None
    requester = panel.Requester(
        sender.jid, sender == ADMIN, (ROOM,) if sender == OWNER else ()
    )

    in_help = [c.name for c in chat.allowed(Place.DIRECT, sender)]
    offered = [o.node for o in panel.PANEL.offered(requester)]

    assert offered == [name for name in in_help if name in panel.OPERATIONS]
    assert ("attach" in offered) == (sender != STRANGER)
    assert ("register" in offered) == (sender == ADMIN)


def test_every_declared_front_end_exists() -> None:
    """Each real command with `cli=` has its subcommand, each with `form=` its node: no front
    end is written apart from the declarations, so none can drift from them."""
    parser = cli._parser(DIRECT)
    on_cli = [c for c in DIRECT.commands.values() if c.cli is not None]
    assert {c.name for c in on_cli} >= {
        "register", "update", "unregister", "list", "show", "attach", "detach", "rooms", "audit"
    }
    for command in on_cli:
        assert command.cli is not None
        words = [w.choices[0] if w.choices else "1" for w in command.signature.required]
        args = parser.parse_args([*command.cli, *words])
        assert isinstance(args.action, functools.partial)
        assert args.action.args == (command,), command.cli
    with_forms = {c.name for c in DIRECT.commands.values() if c.form is not None}
    assert set(panel.OPERATIONS) == with_forms
    assert with_forms >= {
        "register", "update", "unregister", "list", "join", "leave", "attach", "detach"
    }
    for node, operation in panel.OPERATIONS.items():
        assert operation.command is DIRECT.commands[node]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (["addin", "register", "Wiki", "https://w.example/", "--pool", "p"],
         {"name": "Wiki", "url": "https://w.example/", "pool": "p"}),
        (["addin", "update", "Wiki", "url", "https://w.example/"],
         {"name": "Wiki", "field": "url", "value": "https://w.example/", "pool": None}),
        (["addin", "unregister", "Wiki", "--force"], {"name": "Wiki", "force": True}),
        (["addin", "list"], {"pool": None, "json": False}),  # no pages at a shell
        (["addin", "list", "--pool", "p", "--json"], {"pool": "p", "json": True}),
        (["room", "attach", ROOM, "Wiki"], {"room": ROOM, "name": "Wiki"}),
        (["room", "list"], {"pool": None}),
        (["audit", "100"], {"n": 100}),
        (["audit"], {"n": None}),
    ],
)
def test_the_command_line_keeps_chats_words_and_order(
    line: list[str], words: dict[str, object]
) -> None:
    args = vars(cli._parser(DIRECT).parse_args(line))
    assert {name: args[name] for name in words} == words


def test_a_wrong_choice_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli._parser(DIRECT).parse_args(["addin", "update", "Wiki", "colour", "red"])
    assert stopped.value.code == cli.EXIT_USAGE
    assert "invalid choice: 'colour'" in capsys.readouterr().err

