"""The `addinbot` command line: run the bot, or make the chat commands' changes from a shell.

`--config FILE` may stand anywhere; without it $ADDINBOT_CONFIG, then ./addinbot.toml.
Success exits 0; a refusal exits 1 with the same one-line reason chat would give; a bad
command line or configuration exits 2.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence

from bot import addins, names
from bot.commands import text
from bot.config import ConfigError, Settings, config_path, load_settings
from bot.errors import CommandError
from bot.values import Actor
from store import Store

EXIT_REFUSED = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    config_arg, rest = _take_config(args_list)
    parser = _parser()
    args = parser.parse_args(rest)
    if not getattr(args, "action", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        settings = load_settings(config_path(config_arg))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    action: Callable[[argparse.Namespace, Settings], int] = args.action
    try:
        return action(args, settings)
    except CommandError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    finally:
        while _OPEN:
            _OPEN.pop().close()


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="addinbot", description="Persistent-chat add-ins for XMPP rooms.",
        epilog="--config FILE may stand anywhere (default: $ADDINBOT_CONFIG, ./addinbot.toml).",
    )
    sub = parser.add_subparsers(title="commands")

    run = sub.add_parser("run", help="run the bot until SIGINT or SIGTERM")
    run.set_defaults(action=_run)

    check = sub.add_parser(
        "check", help="validate the config, open the database, log in to XMPP, and say what "
        "is wrong (exit 0 ok, 1 unreachable or refused, 2 bad config)",
    )
    check.add_argument("--timeout", type=float, default=10.0, help="seconds per connection")
    check.set_defaults(action=_check)

    addin = sub.add_parser("addin", help="register, update, unregister, list, show add-ins")
    verbs = addin.add_subparsers(title="add-in commands", required=True)
    register = verbs.add_parser("register", help="register a new add-in")
    register.add_argument("name")
    register.add_argument("url")
    _pool(register)
    register.set_defaults(action=_register)
    update = verbs.add_parser("update", help="update NAME url URL | update NAME name NEW-NAME")
    update.add_argument("name")
    update.add_argument("field", choices=["url", "name"])
    update.add_argument("value")
    _pool(update)
    update.set_defaults(action=_update)
    unregister = verbs.add_parser("unregister", help="remove an add-in")
    unregister.add_argument("name")
    _pool(unregister)
    unregister.add_argument("--force", action="store_true", help="detach it from its rooms")
    unregister.set_defaults(action=_unregister)
    listing = verbs.add_parser("list", help="list add-ins")
    _pool(listing)
    listing.add_argument("--page", type=int, default=1)
    listing.set_defaults(action=_list)
    show = verbs.add_parser("show", help="one add-in in full")
    show.add_argument("name")
    _pool(show)
    show.set_defaults(action=_show)

    room = sub.add_parser("room", help="attach, detach, list rooms' add-ins")
    room_verbs = room.add_subparsers(title="room commands", required=True)
    attach = room_verbs.add_parser("attach", help="make NAME the room's add-in")
    attach.add_argument("room")
    attach.add_argument("name")
    attach.set_defaults(action=_attach)
    detach = room_verbs.add_parser("detach", help="remove the room's add-in")
    detach.add_argument("room")
    detach.set_defaults(action=_detach)
    rooms = room_verbs.add_parser("list", help="the rooms the bot serves, with their add-ins")
    _pool(rooms)
    rooms.set_defaults(action=_rooms)

    audit = sub.add_parser("audit", help="the last N changes (default 20)")
    audit.add_argument("n", nargs="?", type=int, default=20)
    audit.set_defaults(action=_audit)

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


def _pool(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", help="the MUC service (needed when several are served)")


def local_actor() -> Actor:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(user, "cli")


_OPEN: list[Store] = []  # closed when the command is done


def _store(settings: Settings) -> Store:
    store = Store.open(settings.store.url)
    _OPEN.append(store)
    store.upgrade()
    return store


def _out(line: str) -> int:
    print(line)
    return 0


def _served(settings: Settings, pool: str | None) -> str:
    return names.resolve_pool(settings.pools.names, pool)


def _register(args: argparse.Namespace, settings: Settings) -> int:
    pool = _served(settings, args.pool)
    info = addins.register(
        _store(settings), local_actor(), pool=pool, name=args.name, url=args.url
    ).result
    return _out(text.registered(info))


def _update(args: argparse.Namespace, settings: Settings) -> int:
    pool, store, actor = _served(settings, args.pool), _store(settings), local_actor()
    if args.field == "url":
        info = addins.update_url(store, actor, pool=pool, name=args.name, url=args.value)
        return _out(text.url_updated(info.result))
    renamed = addins.rename(store, actor, pool=pool, name=args.name, new_name=args.value)
    return _out(text.renamed(args.name, renamed.result))


def _unregister(args: argparse.Namespace, settings: Settings) -> int:
    removed = addins.unregister(
        _store(settings), local_actor(), pool=_served(settings, args.pool), name=args.name,
        force=args.force,
    ).result
    return _out(text.unregistered(removed))


def _list(args: argparse.Namespace, settings: Settings) -> int:
    page = addins.list_addins(
        _store(settings), pool=_served(settings, args.pool), page=args.page
    )
    return _out(text.addin_page(page, more=f"addinbot addin list --page {page.page + 1}"))


def _show(args: argparse.Namespace, settings: Settings) -> int:
    info = addins.show(_store(settings), pool=_served(settings, args.pool), name=args.name)
    return _out(text.addin_details(info))


def _attach(args: argparse.Namespace, settings: Settings) -> int:
    room = names.resolve_room(settings.pools.names, args.room)
    info = addins.attach(_store(settings), local_actor(), room=room, name=args.name).result
    return _out(text.attached(info))


def _detach(args: argparse.Namespace, settings: Settings) -> int:
    room = names.resolve_room(settings.pools.names, args.room)
    name = addins.detach(_store(settings), local_actor(), room=room).result
    return _out(text.detached(room, name))


def _rooms(args: argparse.Namespace, settings: Settings) -> int:
    pool = _served(settings, args.pool) if args.pool else None
    return _out(text.room_lines(addins.list_rooms(_store(settings), pool=pool)))


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    if not 1 <= args.n <= 10_000:
        raise CommandError("Give a number from 1 to 10000.")
    return _out(text.audit_lines(addins.audit(_store(settings), limit=args.n)))


def _db_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    _store(settings)
    return _out("The database schema is up to date.")


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import os

    from bot.xmpp.demo import demo

    password = os.environ.get("ADDINBOT_DEMO_PASSWORD")
    if settings.xmpp is None or not password:
        raise CommandError("The demo needs the [xmpp] section and $ADDINBOT_DEMO_PASSWORD.")
    room = names.resolve_room(settings.pools.names, args.room)
    asyncio.run(demo(
        settings.xmpp, admin=args.admin, manager=args.manager, participant=args.participant,
        password=password, room=room,
    ))
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from bot.check import check

    return check(settings, timeout=args.timeout)


def _run(_args: argparse.Namespace, settings: Settings) -> int:
    from bot.runner import run  # slixmpp is only loaded when the bot runs

    return run(settings)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


