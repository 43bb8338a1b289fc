"""The `addinbot` command line: run the bot, or make the chat commands' changes from a shell.

The chat commands declared with `cli=` (bot.commands.direct) make their own subcommands
here, and run the same handler as chat, as the local user (an admin, via "cli"). `run`,
`check`, `demo` and `db upgrade` are not chat commands: they are written out here.

Reads (the commands declared with `data=`) take `--json` and print their data; at a shell
nothing comes in pages. `addin export` and `addin import` (bot.bulk) move add-ins in bulk.

`--config FILE` may stand anywhere; without it $ADDINBOT_CONFIG, then ./addinbot.toml.
Success exits 0; a refusal exits 1 with the same one-line reason chat would give (in the
command line's words: `--force`, `--pool`); a bad command line or configuration exits 2,
before anything is opened or created. A reader that stops reading (`| head`) ends the
output quietly, and the status is the command's own (0 for a read): Python cannot always
tell that the reader left (a large write that the pipe took in part returns no error), so
the status never depends on it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import getpass
import importlib.metadata
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bot import addins, bulk, names
from bot.commands.direct import DIRECT
from bot.commands.grammar import Arguments, Word, WordKind
from bot.commands.registry import Command, CommandSet, Front, finished, prepare
from bot.config import ConfigError, Settings, config_path, load_settings, pools_problem
from bot.errors import CommandError, ImportRefused
from bot.i18n import msg
from bot.values import Actor
from store import Store

EXIT_REFUSED = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None, *, commands: CommandSet = DIRECT) -> int:
    """The command line `argv` (default: the process's); `commands`: whose declarations
    with `cli=` make the chat commands' part of it."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    config_arg, rest = _take_config(args_list)
    parser = _parser(commands)
    args = parser.parse_args(rest)
    if not getattr(args, "action", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.config_file = config_path(config_arg)
    try:
        settings = load_settings(args.config_file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    no_pools = pools_problem(settings)  # every command serves some pool: say it before
    if no_pools is not None:  # anything is opened (a SQLite file would be made)
        print(no_pools, file=sys.stderr)
        return EXIT_USAGE
    action: Callable[[argparse.Namespace, Settings], int] = args.action
    try:
        status = action(args, settings)
        sys.stdout.flush()  # here, where a reader that has left is noticed
        return status
    except ImportRefused as exc:
        where = getattr(args, "file", "-")
        shown = exc.problems[: bulk.MOST_PROBLEMS]
        for line, reason in shown:
            print(f"{where}:{line}: {reason}", file=sys.stderr)
        if len(exc.problems) > len(shown):
            print(f"{where}: … and {len(exc.problems) - len(shown)} more problems.",
                  file=sys.stderr)
        print(f"{where}: nothing was imported.", file=sys.stderr)
        return EXIT_REFUSED
    except CommandError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_REFUSED
    except BrokenPipeError:  # the reader has gone (`| head`): it has what it wanted
        _pipe_closed()
        return 0
    except KeyboardInterrupt:
        return 130


def _pipe_closed() -> None:
    """Standard output's reader has gone: nothing more is written there, not even what is
    left in the buffer at exit (Python's own flush would fail again, with a traceback)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def version() -> str:
    try:
        return importlib.metadata.version("addinbot")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown"


def _take_config(argv: list[str]) -> tuple[str | None, list[str]]:
    """Pull `--config FILE` / `--config=FILE` out from wherever it stands."""
    config: str | None = None
    rest: list[str] = []
    words = iter(argv)
    for word in words:
        if word == "--config":
            config = next(words, None)
            if config is None:
                raise SystemExit("--config needs a file name")
        elif word.startswith("--config="):
            config = word.partition("=")[2]
        else:
            rest.append(word)
    return config, rest


def _parser(commands: CommandSet) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="addinbot", description="Persistent-chat add-ins for XMPP rooms.",
        epilog="--config FILE may stand anywhere (default: $ADDINBOT_CONFIG, ./addinbot.toml).",
    )
    parser.add_argument("--version", action="version", version=f"addinbot {version()}")
    sub = parser.add_subparsers(title="commands")

    run = sub.add_parser("run", help="run the bot until SIGINT or SIGTERM")
    run.set_defaults(action=_run)

    check = sub.add_parser(
        "check", help="validate the config, open the database, log in to XMPP, and say what "
        "is wrong (exit 0 ok, 1 unreachable or refused, 2 bad config)",
    )
    check.add_argument("--timeout", type=float, default=10.0, help="seconds per connection")
    check.set_defaults(action=_check)

    for group, declared in _groups(commands).items():
        if group is None:  # a command of its own: `addinbot audit`
            for command in declared:
                _declared(sub.add_parser, command)
            continue
        verbs = [c.cli[-1] for c in declared if c.cli]
        if group == "addin":
            verbs += ["export", "import"]
        holder = sub.add_parser(group, help=f"{', '.join(verbs)} ({group} commands)")
        group_verbs = holder.add_subparsers(title=f"{group} commands", required=True)
        for command in declared:
            _declared(group_verbs.add_parser, command)
        if group == "addin":
            _bulk(group_verbs.add_parser)

    demo = sub.add_parser(
        "demo", help="show the whole loop on a local server (password: $ADDINBOT_DEMO_PASSWORD)"
    )
    demo.add_argument("--admin", required=True, help="an admin's JID (in roles.admins)")
    demo.add_argument("--manager", required=True, help="the JID that will own the room")
    demo.add_argument("--participant", required=True, help="the JID that joins and is told")
    demo.add_argument("--room", required=True, help="a room in a served pool")
    demo.set_defaults(action=_demo)

    db = sub.add_parser("db", help="database maintenance")
    db_verbs = db.add_subparsers(title="database commands", required=True)
    db_upgrade = db_verbs.add_parser("upgrade", help="apply schema migrations")
    db_upgrade.set_defaults(action=_db_upgrade)
    return parser


def _groups(commands: CommandSet) -> dict[str | None, list[Command]]:
    """The commands declared with `cli=`, by their first word (None: a command of its own)."""
    groups: dict[str | None, list[Command]] = {}
    for command in commands.commands.values():
        if command.cli is not None:
            group = command.cli[0] if len(command.cli) > 1 else None
            groups.setdefault(group, []).append(command)
    return groups


def _declared(add_parser: Callable[..., argparse.ArgumentParser], command: Command) -> None:
    """The parser of a declared command: its words as chat takes them, in chat's order; an
    option `pool <pool>` is `--pool POOL`, a flag `force` is `--force`."""
    assert command.cli is not None  # noqa: S101 - only commands declared with cli= come here
    parser = add_parser(command.cli[-1], help=command.summary)
    sig = command.signature
    for word in sig.required:
        _add(parser, word.name, word, explained=word.label or None)
    for word in sig.optional:
        _add(parser, word.name, word, nargs="?", explained=word.label or None)
    for word in sig.options:
        if word.kind is not WordKind.PAGE:  # a shell is given everything, on no pages
            _add(parser, f"--{word.name}", word, explained=_HELP.get(word.kind))
    for word in sig.flags:
        parser.add_argument(f"--{word.name}", action="store_true", help=word.label)
    if command.data is not None:
        parser.add_argument("--json", action="store_true",
                            help="print it as JSON (its shape: README, Command line)")
    parser.set_defaults(action=functools.partial(_run_declared, command))


def _bulk(add_parser: Callable[..., argparse.ArgumentParser]) -> None:
    """`addin export` and `addin import`: add-ins in bulk, as JSON or CSV (bot.bulk)."""
    export = add_parser("export", help="write every add-in (of --pool) to standard output")
    export.add_argument("--pool", metavar="POOL",
                        help="the MUC service (default: every served pool)")
    export.add_argument("--format", choices=bulk.FORMATS, default="json")
    export.set_defaults(action=_export)
    importing = add_parser(
        "import", help="register or update the add-ins of a JSON or CSV file, all or none"
    )
    importing.add_argument("file", metavar="FILE", help="a .json or .csv file; - for stdin")
    importing.add_argument("--pool", metavar="POOL",
                           help="the pool of rows that name none")
    importing.add_argument("--format", choices=bulk.FORMATS,
                           help="json or csv (default: by the file's extension; stdin: json)")
    importing.add_argument("--dry-run", action="store_true",
                           help="say what would change, and change nothing")
    importing.set_defaults(action=_import)


_HELP = {WordKind.POOL: "the MUC service (needed when several are served)"}


def _add(
    parser: argparse.ArgumentParser, spelled: str, word: Word, *, nargs: str | None = None,
    explained: str | None = None,
) -> None:
    number = word.kind in (WordKind.PAGE, WordKind.COUNT)
    parser.add_argument(
        spelled, nargs=nargs, type=int if number else str, help=explained,
        choices=word.choices or None,
        metavar=None if word.choices else "N" if number else word.name.upper(),
    )


def local_actor() -> Actor:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(names.one_line(user, what="The local user name (LOGNAME, USER)"), "cli")


def shell_spelling(word: Word) -> str:
    """A word as the command line takes it: `--pool POOL`, `--force`."""
    return f"--{word.name}" if word.kind is WordKind.FLAG else f"--{word.name} {word.name.upper()}"


# At a shell: everything, on no pages (so none is asked for); an answer may be long.
SHELL = Front(
    lambda command, _page: f"addinbot {' '.join(command.cli or ())}",
    most_lines=10_000, paged=False, spelled=shell_spelling,
)


@contextlib.contextmanager
def _opened(settings: Settings) -> Iterator[Store]:
    """The store, at the latest schema, for one invocation; closed when it is done."""
    store = Store.open(settings.store.url)
    try:
        store.upgrade()
        yield store
    finally:
        store.close()


def _run_declared(command: Command, args: argparse.Namespace, settings: Settings) -> int:
    """A declared command, run as the local user (an admin): what chat would answer."""
    sig = command.signature
    given = {w.name: getattr(args, w.name) for w in (*sig.required, *sig.optional)}
    chosen = {w.name: getattr(args, w.name, None) for w in sig.options}
    arguments = Arguments(
        {name: str(value) for name, value in given.items() if value is not None},
        {name: str(value) for name, value in chosen.items() if value is not None},
        frozenset(w.name for w in sig.flags if getattr(args, w.name)),
    )
    with _opened(settings) as store:
        request = prepare(command, settings, store, local_actor(), arguments, SHELL)
        if command.data is not None and args.json:
            if command.needed(arguments) is not command.role:
                finished(command.handler(request))  # an owner's change first: managers --add
            print(json.dumps(command.data(request), ensure_ascii=False, indent=2))
            return 0
        reply = finished(command.handler(request)).result
    if reply is not None:
        print(reply.text)
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    served = settings.pools.names
    pools = [names.resolve_pool(served, args.pool, spelled="--pool POOL")] if args.pool else served
    with _opened(settings) as store:
        found = addins.all_addins(store, pools=pools)
    sys.stdout.write(bulk.written(found, args.format))
    return 0


def _import(args: argparse.Namespace, settings: Settings) -> int:
    served = settings.pools.names
    pool = names.resolve_pool(served, args.pool, spelled="--pool POOL") if args.pool else None
    form = bulk.format_of(args.file, args.format) if args.file != "-" else args.format or "json"
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"Cannot read {args.file}: {exc}") from None
    rows = bulk.rows(text, form, served=served, pool=pool)  # checked as a whole, first
    with _opened(settings) as store:
        done = addins.import_rows(store, local_actor(), rows, dry_run=args.dry_run)
    print(bulk.plan_lines(done.result, dry_run=args.dry_run))
    return 0


def _db_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    with _opened(settings):
        print("The database schema is up to date.")
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import os

    from bot.xmpp.demo import demo

    password = os.environ.get("ADDINBOT_DEMO_PASSWORD")
    if settings.xmpp is None or not password:
        raise CommandError(msg("The demo needs the [xmpp] section and $ADDINBOT_DEMO_PASSWORD."))
    room = names.resolve_room(settings.pools.names, args.room)
    asyncio.run(demo(
        settings.xmpp, admin=args.admin, manager=args.manager, participant=args.participant,
        password=password, room=room,
    ))
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from bot.check import check

    return check(settings, timeout=args.timeout, config_file=args.config_file)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.runner import run  # slixmpp is only loaded when the bot runs

    return run(settings, config_file=args.config_file)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


