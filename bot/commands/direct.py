"""The commands sent to the bot by direct message."""

from __future__ import annotations

from bot import addins
from bot.commands import text
from bot.commands.grammar import Signature
from bot.commands.registry import CommandSet, Request
from bot.errors import CommandError
from bot.values import Actor, Done, Place, Reply, Role

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
def register(request: Request) -> Done[Reply]:
    done = addins.register(
        request.store, actor(request), pool=request.pool(),
        name=request.args["name"], url=request.args["url"],
    )
    return done.then(lambda info: Reply(text.registered(info)))


@DIRECT.command(
    "update", "changes an add-in's URL (rooms using it are told) or its name", role=Role.ADMIN,
    signature=Signature(required=("name", "field", "value"), options=POOL),
    usage="<name> url <url> [pool <pool>] | update <name> name <new-name> [pool <pool>]",
)
def update(request: Request) -> Done[Reply]:
    name, field, value = request.args["name"], request.args["field"].lower(), request.args["value"]
    if field == "url":
        done = addins.update_url(
            request.store, actor(request), pool=request.pool(), name=name, url=value
        )
        return done.then(lambda info: Reply(text.url_updated(info)))
    if field == "name":
        done = addins.rename(
            request.store, actor(request), pool=request.pool(), name=name, new_name=value
        )
        return done.then(lambda info: Reply(text.renamed(name, info)))
    raise CommandError(f"Say “url” or “name” after the add-in's name, not “{field[:20]}”.")


@DIRECT.command(
    "unregister", "removes an add-in (force: also from the rooms using it)", role=Role.ADMIN,
    signature=Signature(required=("name",), options=POOL, flags=("force",)),
)
def unregister(request: Request) -> Done[Reply]:
    done = addins.unregister(
        request.store, actor(request), pool=request.pool(), name=request.args["name"],
        force="force" in request.args.flags,
    )
    return done.then(lambda removed: Reply(text.unregistered(removed)))


@DIRECT.command(
    "list", "lists the add-ins, with their URLs and how many rooms use each",
    signature=Signature(options=("pool", "page")), kept=True,
)
def list_(request: Request) -> Reply:
    page = text.page_number(request.args.options.get("page"))
    result = addins.list_addins(request.store, pool=request.pool(), page=page)
    return Reply(text.addin_page(result, more=f"list page {result.page + 1}"))


@DIRECT.command(
    "show", "an add-in's URL, pool, who registered it and when, and its rooms",
    role=Role.ADMIN, signature=Signature(required=("name",), options=POOL),
)
def show(request: Request) -> Reply:
    info = addins.show(request.store, pool=request.pool(), name=request.args["name"])
    return Reply(text.addin_details(info))


@DIRECT.command(
    "audit", "the last n changes (default 20)", role=Role.ADMIN,
    signature=Signature(optional=("n",)),
)
def audit(request: Request) -> Reply:
    count = text.count(request.args.get("n"), default=20, most=200)
    return Reply(text.audit_lines(addins.audit(request.store, limit=count)))


@DIRECT.command(
    "attach", "makes <name> the room's add-in (replaces any earlier one)", role=Role.MANAGER,
    signature=Signature(required=("room", "name")), room_word="room",
)
def attach(request: Request) -> Done[Reply]:
    assert request.room is not None  # noqa: S101 - the dispatcher resolved it
    done = addins.attach(
        request.store, actor(request), room=request.room, name=request.args["name"]
    )
    return done.then(lambda info: Reply(text.attached(info)))


@DIRECT.command(
    "detach", "removes the room's add-in", role=Role.MANAGER,
    signature=Signature(required=("room",)), room_word="room",
)
def detach(request: Request) -> Done[Reply]:
    room = request.room
    assert room is not None  # noqa: S101 - the dispatcher resolved it
    done = addins.detach(request.store, actor(request), room=room)
    return done.then(lambda name: Reply(text.detached(room, name)))


@DIRECT.command(
    "join", "the bot joins the room and remembers it", role=Role.ADMIN,
    signature=Signature(required=("room",)), room_word="room",
)
def join(request: Request) -> Done[Reply]:
    room = request.room
    assert room is not None  # noqa: S101 - the dispatcher resolved it
    done = addins.set_joined(request.store, actor(request), room=room, joined=True)
    return done.then(lambda changed: Reply(text.joined(room, changed=changed)))


@DIRECT.command(
    "leave", "the bot leaves the room and forgets it (its add-in stays attached)",
    role=Role.ADMIN, signature=Signature(required=("room",)), room_word="room",
)
def leave(request: Request) -> Done[Reply]:
    room = request.room
    assert room is not None  # noqa: S101 - the dispatcher resolved it
    done = addins.set_joined(request.store, actor(request), room=room, joined=False)
    return done.then(lambda changed: Reply(text.left(room, changed=changed)))


@DIRECT.command(
    "rooms", "the rooms the bot serves, each with its add-in", role=Role.ADMIN,
    signature=Signature(options=POOL),
)
def rooms(request: Request) -> Reply:
    pool = request.args.options.get("pool")
    chosen = request.pool() if pool is not None else None
    return Reply(text.room_lines(addins.list_rooms(request.store, pool=chosen)))
