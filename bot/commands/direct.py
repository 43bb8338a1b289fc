"""The commands sent to the bot by direct message; most of them also on the command line
(`cli`) and in the Control Panel (`form`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from bot import addins, bulk, names
from bot.commands import text
from bot.commands.grammar import (
    ADD_MANAGER,
    ADDIN,
    COMMAND,
    COUNT,
    FORCE,
    MUTE_WHERE,
    NAME,
    PAGE,
    POOL,
    REMOVE_MANAGER,
    ROOM,
    SERVED_ROOM,
    URL,
    Signature,
    Word,
)
from bot.commands.registry import CommandSet, Form, Outcome, Request, table_outcome, text_lines
from bot.commands.room import managers_reply, mute_reply
from bot.errors import CommandError
from bot.i18n import msg
from bot.values import AddinPage, AuditEntry, Change, Done, Listed, Place, Reply, Role, RoomInfo
from bot.wording import only_pages
from store import Store

DIRECT = CommandSet(Place.DIRECT)
AUDIT_COUNT = replace(COUNT, label="How many (empty: 20)")


@DIRECT.command(
    "help", "lists the commands you may run", signature=Signature(optional=(COMMAND,))
)
def help_(request: Request) -> Reply:
    return text.help_reply(request)


@DIRECT.command(
    "register", "registers a new add-in", role=Role.ADMIN,
    signature=Signature(required=(NAME, URL), options=(POOL,)),
    cli=("addin", "register"), form=Form("Register an add-in"),
)
def register(request: Request) -> Done[Reply]:
    done = addins.register(
        request.store, request.actor, pool=request.pool(),
        name=request.args["name"], url=request.args["url"],
    )
    return done.then(lambda info: Reply(text.registered(info, request.tr)))


def update_form(request: Request) -> Outcome:
    """The form asks for a new URL, a new name, or both."""
    store, actor, pool, name = request.store, request.actor, request.pool(), request.args["name"]
    url, new_name = request.args.get("url"), request.args.get("new_name")
    if not url and not new_name:
        raise CommandError(msg("Fill in a new URL, a new name, or both."))
    said: list[str] = []
    changes: tuple[Change, ...] = ()
    # The new name first: the change follower looks the add-in up by the name its URL
    # change was recorded under, so that row must carry the name it keeps.
    if new_name:
        renamed = addins.rename(store, actor, pool=pool, name=name, new_name=new_name)
        said.append(text.renamed(renamed.result, request.tr))
        name, changes = renamed.result.name, renamed.changes
    if url:
        try:
            updated = addins.update_url(store, actor, pool=pool, name=name, url=url)
        except CommandError as exc:
            if not said:
                raise
            not_changed = request.tr.gettext(
                "The URL was not changed: {reason}", reason=request.tr.say(exc.message)
            )
            return Outcome("\n".join([said[0], not_changed]), error=True, changes=changes)
        said.append(text.url_updated(updated.result, request.tr))
        changes += updated.changes
    return Outcome("\n".join(said), changes=changes)


@DIRECT.command(
    "update", "changes an add-in's URL (rooms using it are told) or its name", role=Role.ADMIN,
    signature=Signature(
        required=(ADDIN, Word("field", choices=("url", "name")), Word("value")), options=(POOL,)
    ),
    usage="<name> url <url> [pool <pool>] | update <name> name <new-name> [pool <pool>]",
    cli=("addin", "update"),
    form=Form(
        "Change an add-in's URL or name", "Rooms using the add-in are told a new URL.",
        Signature(
            required=(ADDIN,), options=(POOL,), optional=(
                Word("url", label="New URL (empty: unchanged)"),
                Word("new_name", label="New name (empty: unchanged)"),
            ),
        ),
        update_form,
    ),
)
def update(request: Request) -> Done[Reply]:
    name, field, value = request.args["name"], request.args["field"].lower(), request.args["value"]
    store, actor = request.store, request.actor
    if field == "url":
        done = addins.update_url(store, actor, pool=request.pool(), name=name, url=value)
        return done.then(lambda info: Reply(text.url_updated(info, request.tr)))
    if field == "name":
        done = addins.rename(store, actor, pool=request.pool(), name=name, new_name=value)
        return done.then(lambda info: Reply(text.renamed(info, request.tr)))
    raise CommandError(
        msg("Say “url” or “name” after the add-in's name, not “{said}”.", said=field[:20])
    )


@DIRECT.command(
    "unregister", "removes an add-in (force: also from the rooms using it)", role=Role.ADMIN,
    signature=Signature(required=(ADDIN,), options=(POOL,), flags=(FORCE,)),
    cli=("addin", "unregister"), form=Form("Unregister an add-in"),
)
def unregister(request: Request) -> Done[Reply]:
    done = addins.unregister(
        request.store, request.actor, pool=request.pool(), name=request.args["name"],
        force="force" in request.args.flags, spelled=request.front.spelled(FORCE),
    )
    return done.then(lambda removed: Reply(text.unregistered(removed, request.tr)))


def every_addin(store: Store, pool: str, most: int | None = None) -> list[tuple[str, str, int]]:
    """The add-ins of `pool` (name, URL, rooms using it), all of them or at least `most`."""
    found: list[tuple[str, str, int]] = []
    page = 1
    while most is None or len(found) <= most:
        result = addins.list_addins(store, pool=pool, page=page)
        found += result.items
        if result.page >= result.pages:
            break
        page += 1
    return found


def list_form(request: Request) -> Outcome:
    """The form shows every add-in, as a table (and as lines of text)."""
    pool, tr = request.pool(), request.tr
    rows = [(name, url, str(uses)) for name, url, uses in every_addin(request.store, pool)]
    if not rows:
        return Outcome(text.no_addins(pool, tr))
    columns = (
        ("name", tr.gettext("Name")), ("url", tr.gettext("URL")),
        ("rooms", tr.gettext("Rooms using it")),
    )
    return table_outcome(
        tr.gettext("Add-ins in {pool}: {count}.", pool=pool, count=len(rows)), columns, rows,
        request.settings.limits.reply_chars, tr,
    )


def _chosen_pools(request: Request) -> list[str]:
    """The pool asked for, or every served pool."""
    return [request.pool()] if "pool" in request.args.options else request.settings.pools.names


def _listed(request: Request) -> list[Listed]:
    """Every add-in of the pool asked for, or of every served pool: for a shell."""
    return addins.all_addins(request.store, pools=_chosen_pools(request))


def _every_at_a_shell(request: Request) -> Reply:
    """All of them, grouped by pool, on no pages."""
    listed = _listed(request)
    groups = []
    for pool in _chosen_pools(request):
        items = tuple((each.name, each.url, each.rooms) for each in listed if each.pool == pool)
        groups.append(AddinPage(pool, items, 1, 1, len(items)))
    return Reply(text.pools_pages(groups, 1, 1, request.tr, more=""))


def list_data(request: Request) -> object:
    return bulk.as_data(_listed(request), rooms=True)


@DIRECT.command(
    "list", "lists the add-ins, with their URLs and how many rooms use each",
    signature=Signature(options=(POOL, PAGE)), kept=True,
    cli=("addin", "list"), form=Form("List the add-ins", handler=list_form), data=list_data,
)
def list_(request: Request) -> Reply:
    if not request.front.paged:
        return _every_at_a_shell(request)
    pools = request.settings.pools.names
    page = text.page_number(request.args.options.get("page"))
    if "pool" in request.args.options or len(pools) == 1:
        result = addins.list_addins(request.store, pool=request.pool(), page=page)
        return Reply(text.addin_page(result, request.tr, more=request.more(result.page + 1)))
    # Every served pool's, grouped by pool: this page of each (Get-CsPersistentChatAddin).
    first = [addins.list_addins(request.store, pool=pool, page=1) for pool in pools]
    pages = max(each.pages for each in first)
    if page > pages:
        raise CommandError(only_pages(pages))
    found = first if page == 1 else [
        addins.list_addins(request.store, pool=each.pool, page=page)
        for each in first if each.pages >= page
    ]
    return Reply(text.pools_pages(found, page, pages, request.tr, more=request.more(page + 1)))


def show_data(request: Request) -> object:
    info = addins.show(request.store, pool=request.pool(), name=request.args["name"])
    return {
        "pool": info.pool, "name": info.name, "url": info.url,
        "registered_by": info.created_by, "registered_at": iso_time(info.created_at),
        "rooms": list(info.rooms),
    }


def show_form(request: Request) -> Outcome:
    """The add-in's details, as lines of text (the chat answer's)."""
    info = addins.show(request.store, pool=request.pool(), name=request.args["name"])
    tr = request.tr
    lines = text_lines(text.addin_details(info, tr).splitlines()[1:])
    return Outcome(tr.gettext("“{name}” in {pool}.", name=info.name, pool=info.pool),
                   text=tuple(lines), text_label=tr.gettext("Add-in"))


@DIRECT.command(
    "show", "an add-in's URL, pool, who registered it and when, and its rooms",
    role=Role.ADMIN, signature=Signature(required=(ADDIN,), options=(POOL,)),
    cli=("addin", "show"), form=Form("Show an add-in", handler=show_form), data=show_data,
)
def show(request: Request) -> Reply:
    info = addins.show(request.store, pool=request.pool(), name=request.args["name"])
    named = addins.every_manager(request.store) if info.rooms else {}
    return Reply(text.addin_details(info, request.tr, managers=named))


def _audited(request: Request) -> list[AuditEntry]:
    count = text.count(request.args.get("n"), default=20, most=request.front.most_lines)
    return addins.audit(request.store, limit=count)


def audit_data(request: Request) -> object:
    return [
        {
            "id": entry.id, "at": iso_time(entry.at), "actor": entry.actor, "via": entry.via,
            "action": entry.action, "pool": entry.pool, "addin": entry.addin,
            "room": entry.room, "detail": entry.detail,
        }
        for entry in _audited(request)
    ]


def audit_form(request: Request) -> Outcome:
    """The last changes, as a table (and as the chat answer's lines)."""
    entries, tr = _audited(request), request.tr
    if not entries:
        return Outcome(text.audit_lines(entries, tr))
    columns = (
        ("when", tr.gettext("When")), ("who", tr.gettext("Who")), ("via", tr.gettext("Via")),
        ("what", tr.gettext("What")),
    )
    rows = [  # records: in the words they were recorded in
        (text.when(e.at), names.audit_line(e.actor), e.via, text.audit_what(e)) for e in entries
    ]
    return table_outcome(
        tr.ngettext("The last {n} change, newest first.", "The last {n} changes, newest first.",
                    len(entries)),
        columns, rows, request.settings.limits.reply_chars, tr, label=tr.gettext("Changes"),
    )


@DIRECT.command(
    "audit", "the last n changes (default 20)", role=Role.ADMIN,
    signature=Signature(optional=(COUNT,)), cli=("audit",), data=audit_data,
    form=Form(
        "Read the audit log", signature=Signature(optional=(AUDIT_COUNT,)), handler=audit_form
    ),
)
def audit(request: Request) -> Reply:
    return Reply(text.audit_lines(_audited(request), request.tr))


@DIRECT.command(
    "attach", "makes <name> the room's add-in (replaces any earlier one)", role=Role.MANAGER,
    signature=Signature(required=(ROOM, ADDIN)), room_word="room",
    cli=("room", "attach"), form=Form("Attach an add-in to a room"),
)
def attach(request: Request) -> Done[Reply]:
    assert request.room is not None  # noqa: S101 - the request resolved it
    done = addins.attach(
        request.store, request.actor, room=request.room, name=request.args["name"]
    )
    autojoin = request.settings.rooms.autojoin
    return done.then(lambda info: Reply(
        text.attached(info, request.tr, served=info.joined or info.jid in autojoin)
    ))


@DIRECT.command(
    "detach", "removes the room's add-in", role=Role.MANAGER,
    signature=Signature(required=(ROOM,)), room_word="room",
    cli=("room", "detach"), form=Form("Detach a room's add-in"),
)
def detach(request: Request) -> Done[Reply]:
    room = request.room
    assert room is not None  # noqa: S101 - the request resolved it
    done = addins.detach(request.store, request.actor, room=room)
    return done.then(lambda name: Reply(text.detached(room, name, request.tr)))


@DIRECT.command(
    "join", "the bot joins the room and remembers it", role=Role.ADMIN,
    signature=Signature(required=(ROOM,)), room_word="room",
    form=Form("Join a room and serve it"), room_must_exist=True,
)
def join(request: Request) -> Done[Reply]:
    room = request.room
    assert room is not None  # noqa: S101 - the request resolved it
    done = addins.set_joined(request.store, request.actor, room=room, joined=True)
    return done.then(lambda changed: Reply(text.joined(room, request.tr, changed=changed)))


@DIRECT.command(
    "leave", "the bot leaves the room and forgets it (its add-in stays attached)",
    role=Role.ADMIN, signature=Signature(required=(SERVED_ROOM,)), room_word="room",
    form=Form("Leave a room and forget it"),
)
def leave(request: Request) -> Done[Reply]:
    room = request.room
    assert room is not None  # noqa: S101 - the request resolved it
    done = addins.set_joined(request.store, request.actor, room=room, joined=False)
    return done.then(lambda changed: Reply(text.left(room, request.tr, changed=changed)))


def _rooms(request: Request) -> list[RoomInfo]:
    chosen = request.pool() if "pool" in request.args.options else None
    return addins.list_rooms(request.store, pool=chosen, managers=True)


def rooms_data(request: Request) -> object:
    return [
        {
            "room": room.jid, "pool": names.pool_of(room.jid), "joined": room.joined,
            "stopped_reason": room.stopped_reason, "addin": room.addin, "url": room.url,
        }
        for room in _rooms(request)
    ]


def rooms_form(request: Request) -> Outcome:
    """The rooms the bot knows, as a table (and as the chat answer's lines)."""
    found, tr = _rooms(request), request.tr
    if not found:
        return Outcome(text.room_lines(found, tr))
    columns = (
        ("room", tr.gettext("Room")), ("addin", tr.gettext("Add-in")), ("url", tr.gettext("URL")),
        ("served", tr.gettext("Served")),
    )
    yes, no = tr.gettext("yes"), tr.gettext("no")
    rows = [
        (r.jid, r.addin or "", r.url or "", yes if r.joined else no + text.room_state(r, tr))
        for r in found
    ]
    served = sum(room.joined for room in found)
    if served < len(found):
        note = tr.ngettext(
            "The bot serves {n} room and knows {more} more.",
            "The bot serves {n} rooms and knows {more} more.", served, more=len(found) - served,
        )
    else:
        note = tr.ngettext("The bot serves {n} room.", "The bot serves {n} rooms.", served)
    return table_outcome(
        note, columns, rows, request.settings.limits.reply_chars, tr, label=tr.gettext("Rooms"),
    )


@DIRECT.command(
    "rooms", "the rooms the bot serves, each with its add-in", role=Role.ADMIN,
    signature=Signature(options=(POOL,)), cli=("room", "list"), data=rooms_data,
    form=Form("List the rooms", handler=rooms_form),
)
def rooms(request: Request) -> Reply:
    return Reply(text.room_lines(
        _rooms(request), request.tr, pin_default=request.settings.announce.pin
    ))


def iso_time(moment: datetime) -> str:
    """A time as the JSON of reads gives it: ISO 8601 in UTC, to the second, with a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def managers_data(request: Request) -> object:
    """`room managers ROOM --json`, after any --add or --remove: the room and its named
    managers, by address."""
    assert request.room is not None  # noqa: S101 - the request resolved it
    return {"room": request.room, "managers": list(addins.managers(request.store, request.room))}


@DIRECT.command(
    "managers", "a room's named managers; its owners add or remove them",
    role=Role.MANAGER, signature=Signature(required=(ROOM,), options=(ADD_MANAGER, REMOVE_MANAGER)),
    usage="<room> [add <jid>] [remove <jid>]", room_word="room", owner_options=("add", "remove"),
    cli=("room", "managers"), data=managers_data, form=Form(
        "Name a room's managers",
        "Leave both empty to see them. Only the room's owners may add or remove one.",
    ),
)
def managers(request: Request) -> Done[Reply]:
    assert request.room is not None  # noqa: S101 - the request resolved it
    return managers_reply(request, request.room)


def _where(request: Request) -> str:
    """`mute [<room>|all]` by direct message: a room, or every room (the default)."""
    where = request.args.get("where")
    if where is None or where.lower() == "all":
        return addins.ALL_ROOMS
    return names.resolve_room(request.settings.pools.names, where)


@DIRECT.command(
    "mute", "you are not sent the add-in's link on joining a room (all: any room)",
    signature=Signature(optional=(MUTE_WHERE,)), usage="[<room>|all]",
)
def mute(request: Request) -> Done[Reply]:
    where = _where(request)
    return mute_reply(request, where, mute=True, undo=f"unmute {where}")


@DIRECT.command(
    "unmute", "you are sent the add-in's link again on joining (all: any room)",
    signature=Signature(optional=(MUTE_WHERE,)), usage="[<room>|all]",
)
def unmute(request: Request) -> Done[Reply]:
    return mute_reply(request, _where(request), mute=False)
