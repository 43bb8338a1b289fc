"""The commands sent to the bot by direct message."""

from __future__ import annotations

from bot import addins
from bot.commands import text
from bot.commands.grammar import Signature
from bot.commands.registry import CommandSet, Request
from bot.errors import CommandError
from bot.values import Actor, Place, Reply, Role

DIRECT = CommandSet(Place.DIRECT)
POOL = ("pool",)


def actor(request: Request) -> Actor:
    assert request.sender.jid is not None  # noqa: S101 - direct messages come from a real JID
    return Actor(request.sender.jid, "dm")


@DIRECT.command(
    "help", "lists the commands you may run", signature=Signature(optional=("command",))
)
def help_(request: Request) -> Reply:
    return text.help_reply(request)


@DIRECT.command(
    "register", "registers a new add-in", role=Role.ADMIN,
    signature=Signature(required=("name", "url"), options=POOL),
)
def register(request: Request) -> Reply:
    info = addins.register(
        request.engine, actor(request), pool=request.pool(),
        name=request.args["name"], url=request.args["url"],
    )
    return Reply(text.registered(info))


@DIRECT.command(
    "update", "changes an add-in's URL (rooms using it are told) or its name", role=Role.ADMIN,
    signature=Signature(required=("name", "field", "value"), options=POOL),
    usage="<name> url <url> [pool <pool>] | update <name> name <new-name> [pool <pool>]",
)
def update(request: Request) -> Reply:
    name, field, value = request.args["name"], request.args["field"].lower(), request.args["value"]
    if field == "url":
        info = addins.update_url(
            request.engine, actor(request), pool=request.pool(), name=name, url=value
        )
        return Reply(text.url_updated(info))
    if field == "name":
        info = addins.rename(
            request.engine, actor(request), pool=request.pool(), name=name, new_name=value
        )
        return Reply(text.renamed(name, info))
    raise CommandError(f"Say “url” or “name” after the add-in's name, not “{field[:20]}”.")


@DIRECT.command(
    "unregister", "removes an add-in (force: also from the rooms using it)", role=Role.ADMIN,
    signature=Signature(required=("name",), options=POOL, flags=("force",)),
)
def unregister(request: Request) -> Reply:
    removed = addins.unregister(
        request.engine, actor(request), pool=request.pool(), name=request.args["name"],
        force="force" in request.args.flags,
    )
    return Reply(text.unregistered(removed))


@DIRECT.command(
    "list", "lists the add-ins, with their URLs and how many rooms use each",
    signature=Signature(options=("pool", "page")), kept=True,
)
def list_(request: Request) -> Reply:
    page = text.page_number(request.args.options.get("page"))
    result = addins.list_addins(request.engine, pool=request.pool(), page=page)
    return Reply(text.addin_page(result, more=f"list page {result.page + 1}"))


@DIRECT.command(
    "show", "an add-in's URL, pool, who registered it and when, and its rooms",
    role=Role.ADMIN, signature=Signature(required=("name",), options=POOL),
)
def show(request: Request) -> Reply:
    info = addins.show(request.engine, pool=request.pool(), name=request.args["name"])
    return Reply(text.addin_details(info))


@DIRECT.command(
    "audit", "the last n changes (default 20)", role=Role.ADMIN,
    signature=Signature(optional=("n",)),
)
def audit(request: Request) -> Reply:
    count = text.count(request.args.get("n"), default=20, most=200)
    return Reply(text.audit_lines(addins.audit(request.engine, limit=count)))


@DIRECT.command(
    "attach", "makes <name> the room's add-in (replaces any earlier one)", role=Role.MANAGER,
    signature=Signature(required=("room", "name")), room_word="room",
)
def attach(request: Request) -> Reply:
    assert request.room is not None  # noqa: S101 - the dispatcher resolved it
    info = addins.attach(
        request.engine, actor(request), room=request.room, name=request.args["name"]
    )
    return Reply(text.attached(info))


@DIRECT.command(
    "detach", "removes the room's add-in", role=Role.MANAGER,
    signature=Signature(required=("room",)), room_word="room",
)
def detach(request: Request) -> Reply:
    assert request.room is not None  # noqa: S101 - the dispatcher resolved it
    name = addins.detach(request.engine, actor(request), room=request.room)
    return Reply(text.detached(request.room, name))


@DIRECT.command(
    "join", "the bot joins the room and remembers it", role=Role.ADMIN,
    signature=Signature(required=("room",)), room_word="room",
)
def join(request: Request) -> Reply:
    assert request.room is not None  # noqa: S101 - the dispatcher resolved it
    changed = addins.set_joined(request.engine, actor(request), room=request.room, joined=True)
    return Reply(text.joined(request.room, changed=changed))


@DIRECT.command(
    "leave", "the bot leaves the room and forgets it (its add-in stays attached)",
    role=Role.ADMIN, signature=Signature(required=("room",)), room_word="room",
)
def leave(request: Request) -> Reply:
    assert request.room is not None  # noqa: S101 - the dispatcher resolved it
    changed = addins.set_joined(request.engine, actor(request), room=request.room, joined=False)
    return Reply(text.left(request.room, changed=changed))


@DIRECT.command(
    "rooms", "the rooms the bot serves, each with its add-in", role=Role.ADMIN,
    signature=Signature(options=POOL),
)
def rooms(request: Request) -> Reply:
    pool = request.args.options.get("pool")
    chosen = request.pool() if pool is not None else None
    return Reply(text.room_lines(addins.list_rooms(request.engine, pool=chosen)))
