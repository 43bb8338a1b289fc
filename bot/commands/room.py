"""The commands typed in a room: `!addin …`, or `<bot nick>: …`."""

from __future__ import annotations

from bot import addins, names
from bot.commands import text
from bot.commands.grammar import ADDIN, COMMAND, PAGE, PREFIX, Signature
from bot.commands.registry import CommandSet, Request
from bot.values import Done, Link, Place, Reply, Role

ROOM = CommandSet(Place.ROOM, prefix=f"{PREFIX} ")


def _room(request: Request) -> str:
    assert request.room is not None  # noqa: S101 - room commands always have their room
    return request.room


@ROOM.command("show", "says this room's add-in and its URL", kept=True)
def show(request: Request) -> Reply:
    info = addins.room_info(request.store, _room(request))
    if info.addin is None or info.url is None:
        return Reply(text.no_addin_sentence(request.tr), public=True)
    sentence = text.welcome_sentence(info.addin, info.url, request.tr)
    return Reply(sentence, public=True, link=Link(info.url, info.addin))


@ROOM.command(
    "list", "the add-ins of this room's pool", signature=Signature(options=(PAGE,)), kept=True
)
def list_(request: Request) -> Reply:
    page = text.page_number(request.args.options.get("page"))
    result = addins.list_addins(request.store, pool=names.pool_of(_room(request)), page=page)
    return Reply(text.addin_page(result, request.tr, more=request.more(result.page + 1)))


@ROOM.command(
    "attach", "makes <name> this room's add-in and tells the room", role=Role.MANAGER,
    signature=Signature(required=(ADDIN,)),
)
def attach(request: Request) -> Done[Reply | None]:
    done = addins.attach(
        request.store, request.actor, room=_room(request), name=request.args["name"]
    )
    return Done(None, done.changes)  # the announcement in the room is the answer


@ROOM.command("detach", "removes this room's add-in and tells the room", role=Role.MANAGER)
def detach(request: Request) -> Done[Reply | None]:
    return Done(None, addins.detach(request.store, request.actor, room=_room(request)).changes)


@ROOM.command("help", "the room commands you may run", signature=Signature(optional=(COMMAND,)))
def help_(request: Request) -> Reply:
    return text.help_reply(request)
