"""The commands typed in a room: `!addin …`, or `<bot nick>: …`."""

from __future__ import annotations

from bot import addins, names, policy
from bot.commands import text
from bot.commands.grammar import (
    ADD_MANAGER,
    ADDIN,
    COMMAND,
    PAGE,
    PIN_STATE,
    PREFIX,
    REMOVE_MANAGER,
    Arguments,
    Signature,
)
from bot.commands.registry import CommandSet, Managers, Request
from bot.errors import CommandError
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


def managers_reply(request: Request, room: str) -> Done[Reply]:
    """`managers [add <jid>] [remove <jid>]`: list them, or (an owner) change them."""
    add = [names.bare_jid(jid) for jid in _given(request, "add")]
    remove = [names.bare_jid(jid) for jid in _given(request, "remove")]
    if not add and not remove:
        named = addins.managers(request.store, room)
        return Done(Reply(text.managers_list(room, named, request.tr)))
    done = addins.set_managers(request.store, request.actor, room=room, add=add, remove=remove)
    return done.then(
        lambda now: Reply(text.managers_changed(room, add, remove, now, request.tr))
    )


def _given(request: Request, option: str) -> list[str]:
    value = request.args.options.get(option)
    return [] if value is None else [value]


@ROOM.command(
    "managers", "this room's named managers; an owner adds or removes one",
    role=Role.MANAGER, signature=Signature(options=(ADD_MANAGER, REMOVE_MANAGER)),
    usage="[add <jid>] [remove <jid>]", owner_options=("add", "remove"),
)
def managers(request: Request) -> Done[Reply]:
    return managers_reply(request, _room(request))


def pin_check(managers: Managers, room: str | None, args: Arguments) -> str | None:
    """On the loop, before `pin on` is recorded: may the bot change the room's subject?"""
    if room is None or (args.get("state") or "").lower() != "on":
        return None
    return policy.subject_refusal(
        room, in_room=managers.state(room) is not None, role=managers.own_role(room),
        occupants_may=managers.subject_open(room),
    )


@ROOM.command(
    "pin", "keeps the add-in at the end of the room's subject (on), or not (off)",
    role=Role.MANAGER, signature=Signature(required=(PIN_STATE,)), usage="on|off",
    precheck=pin_check,
)
def pin(request: Request) -> Done[Reply]:
    room, on = _room(request), request.args["state"].lower() == "on"
    done = addins.set_pin(request.store, request.actor, room=room, pin=on)
    return done.then(
        lambda info: Reply(
            text.pin_changed(room, request.tr, pin=on, attached=info.addin is not None)
        )
    )


@ROOM.command("leave", "the bot says goodbye, leaves this room and forgets it", role=Role.OWNER)
def leave(request: Request) -> Done[Reply | None]:
    room = _room(request)
    if room in request.settings.rooms.autojoin:
        raise CommandError(text.autojoin_refusal(room))
    done = addins.set_joined(request.store, request.actor, room=room, joined=False)
    if not done.result:  # not a room it remembers serving (e.g. only looked at): say so
        return Done(Reply(text.left(room, request.tr, changed=False)))
    return Done(None, done.changes)  # the goodbye, said in the room, is the answer


def mute_reply(
    request: Request, where: str, *, mute: bool, undo: str = "!addin unmute"
) -> Done[Reply]:
    """`mute` / `unmute` in `where` (a room, or ALL_ROOMS) for whoever asks; `undo`: how
    they type the command that undoes a mute there."""
    refusal = policy.mute_refusal(request.person)
    if refusal is not None:
        raise CommandError(refusal)
    assert request.person is not None  # noqa: S101 - refused above otherwise
    room = None if where == addins.ALL_ROOMS else where
    done = addins.set_muted(
        request.store, request.actor, room=where, person=request.person, muted=mute
    )
    tr = request.tr
    said = text.muted(room, tr, changed=done.result, undo=undo) if mute else text.unmuted(
        room, tr, changed=done.result
    )
    if not mute and room is not None:
        _, everywhere = addins.muted(request.store, room=room, person=request.person)
        if everywhere:
            said += text.still_muted_everywhere(tr)
    return done.then(lambda _changed: Reply(said))


@ROOM.command("mute", "you are not sent the add-in's link when you join this room")
def mute(request: Request) -> Done[Reply]:
    return mute_reply(request, _room(request), mute=True)


@ROOM.command("unmute", "you are sent the add-in's link again when you join this room")
def unmute(request: Request) -> Done[Reply]:
    return mute_reply(request, _room(request), mute=False)
