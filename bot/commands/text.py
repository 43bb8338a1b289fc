"""How results read in chat and on the command line, in the reader's language (`tr`:
bot.i18n; each msgid is the English sentence, with named placeholders)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime

from bot import names
from bot.commands.registry import Request
from bot.errors import BadWords, CommandError
from bot.i18n import ENGLISH, Msg, Tr, msg, msg_n
from bot.values import AddinInfo, AddinPage, AuditEntry, Removed, Reply, RoomInfo
from bot.wording import did_you_mean, some_of


def registered(info: AddinInfo, tr: Tr) -> str:
    return tr.gettext("Registered “{name}” in {pool}: {url}",
                      name=info.name, pool=info.pool, url=info.url)


def url_updated(info: AddinInfo, tr: Tr) -> str:
    using = len(info.rooms)
    if not using:
        return tr.gettext("“{name}” now points to {url}", name=info.name, url=info.url)
    return tr.ngettext(
        "“{name}” now points to {url} — the {n} room using it is told",
        "“{name}” now points to {url} — the {n} rooms using it are told",
        using, name=info.name, url=info.url,
    )


def renamed(info: AddinInfo, tr: Tr) -> str:
    return tr.gettext("Renamed “{was}” to “{name}”.", was=info.was, name=info.name)


def unregistered(removed: Removed, tr: Tr) -> str:
    count = len(removed.rooms)
    if count:
        return tr.ngettext(
            "Unregistered “{name}” and detached it from {n} room, which was told: {rooms}.",
            "Unregistered “{name}” and detached it from {n} rooms, which were told: {rooms}.",
            count, name=removed.name, rooms=some_of(removed.rooms),
        )
    return tr.gettext("Unregistered “{name}”.", name=removed.name)


def attached(room: RoomInfo, tr: Tr, *, served: bool = True) -> str:
    said = tr.gettext("{room} now has the add-in “{name}”: {url}",
                      room=room.jid, name=room.addin, url=room.url)
    if served:
        return said
    return tr.gettext(
        "{said}. The bot is not in {room}, so nobody there is told; send the bot "
        "`join {room}` to serve the room.", said=said, room=room.jid,
    )


def detached(room: str, name: str, tr: Tr) -> str:
    return tr.gettext("{room} no longer has the add-in “{name}”.", room=room, name=name)


def joined(room: str, tr: Tr, *, changed: bool) -> str:
    if not changed:
        return tr.gettext("The bot already serves {room}.", room=room)
    return tr.gettext("Joining {room}; the bot will rejoin it after restarts.", room=room)


def left(room: str, tr: Tr, *, changed: bool) -> str:
    if changed:
        return tr.gettext("Leaving {room}.", room=room)
    return tr.gettext("The bot does not serve {room}.", room=room)


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def count(raw: str | None, *, default: int, most: int) -> int:
    if raw is None:
        return default
    if not raw.isdecimal() or not 1 <= int(raw) <= most:  # "²".isdigit(), but int() refuses it
        raise BadWords(msg("Give a number from 1 to {most}, not “{raw}”.",
                           most=most, raw=raw[:20]))
    return int(raw)


def page_number(raw: str | None) -> int:
    return count(raw, default=1, most=1_000_000)


def no_addins(pool: str, tr: Tr) -> str:
    return tr.gettext("No add-ins are registered in {pool}.", pool=pool)


def uses(count: int, tr: Tr) -> str:
    return tr.ngettext("{n} room", "{n} rooms", count)


def addin_page(page: AddinPage, tr: Tr, *, more: str) -> str:
    if not page.total:
        return no_addins(page.pool, tr)
    head = tr.gettext("Add-ins in {pool} ({total}; page {page} of {pages}):",
                      pool=page.pool, total=page.total, page=page.page, pages=page.pages)
    lines = [head] + [f"• {name} — {url} ({uses(n, tr)})" for name, url, n in page.items]
    if page.page < page.pages:
        lines.append(tr.gettext("More: {more}", more=more))
    return "\n".join(lines)


def pools_pages(found: list[AddinPage], page: int, pages: int, tr: Tr, *, more: str) -> str:
    """One page of every served pool's add-ins, grouped by pool."""
    lines = [
        tr.gettext("Add-ins of every served pool (page {page} of {pages}):",
                   page=page, pages=pages)
    ] if pages > 1 else []
    for each in found:
        if not each.total:
            lines.append(no_addins(each.pool, tr))
            continue
        lines.append(tr.ngettext("{pool} ({n} add-in):", "{pool} ({n} add-ins):",
                                 each.total, pool=each.pool))
        lines += [f"• {name} — {url} ({uses(n, tr)})" for name, url, n in each.items]
    if page < pages:
        lines.append(tr.gettext("More: {more}", more=more))
    return "\n".join(lines)


def addin_details(
    info: AddinInfo, tr: Tr, *, managers: Mapping[str, Iterable[str]] | None = None
) -> str:
    rooms = tr.say(some_of(info.rooms)) if info.rooms else tr.gettext("none")
    lines = [
        f"“{info.name}”",
        tr.gettext("URL: {url}", url=info.url),
        tr.gettext("Pool: {pool}", pool=info.pool),
        tr.gettext("Registered by {who} on {when}",
                   who=info.created_by, when=when(info.created_at)),
        tr.gettext("Rooms ({count}): {rooms}", count=len(info.rooms), rooms=rooms),
    ]
    named = managers or {}
    lines += [
        tr.gettext("Named managers of {room}: {managers}",
                   room=room, managers=", ".join(sorted(named[room])))
        for room in info.rooms if named.get(room)
    ]
    return "\n".join(lines)


def audit_lines(entries: Iterable[AuditEntry], tr: Tr) -> str:
    lines = [audit_line(entry) for entry in entries]
    return "\n".join(lines) if lines else tr.gettext("No changes have been recorded yet.")


def audit_line(entry: AuditEntry) -> str:
    """One line of the audit log: a record, kept in the words it was recorded in."""
    # One line, whatever an older version or another process stored.
    return names.audit_line(f"{when(entry.at)}  {entry.actor} ({entry.via})  {audit_what(entry)}")


def audit_what(entry: AuditEntry) -> str:
    """What changed, in one audit line's words: “attach “Wiki” in dev@…  — https://…”
    (a record: kept in the words it was recorded in, English)."""
    what = entry.action
    if entry.addin:
        what += f" “{entry.addin}”"
    if entry.room:
        what += f" {'in' if entry.action != 'detach' else 'from'} {entry.room}"
    elif entry.pool:
        what += f" in {entry.pool}"
    if entry.detail:
        what += f" — {entry.detail}"
    return names.audit_line(what)


def room_lines(rooms: list[RoomInfo], tr: Tr, *, pin_default: bool = False) -> str:
    if not rooms:
        return tr.gettext("The bot serves no rooms.")
    lines = []
    for room in rooms:
        addin = f"“{room.addin}” — {room.url}" if room.addin else tr.gettext("no add-in")
        if room.managers:
            addin += tr.gettext("; managers: {managers}", managers=", ".join(room.managers))
        if (room.pin if room.pin is not None else pin_default):
            addin += tr.gettext("; pinned to the subject")
        lines.append(f"• {room.jid}{room_state(room, tr)}: {addin}")
    return "\n".join(lines)


def room_state(room: RoomInfo, tr: Tr) -> str:
    """“ (not joined: why)” for a room the bot does not serve now; nothing for one it does."""
    if room.joined:
        return ""
    if room.stopped_reason:
        return tr.gettext(" (not joined: {why})", why=room.stopped_reason)
    return tr.gettext(" (not joined)")


def help_reply(request: Request) -> Reply:
    """Only the commands the sender may run; or one command's usage."""
    prefix, tr = request.front.prefix, request.tr
    wanted = request.args.get("command")
    if wanted is not None:
        for command in request.allowed:
            if command.name == wanted.lower():
                usage = prefix + command.usage
                return Reply(tr.gettext("Usage: {usage} — {summary}",
                                        usage=usage, summary=tr.gettext(command.summary)))
        names = [c.name for c in request.allowed]
        raise CommandError(msg(
            "No command “{name}” that you may run.{did_you_mean} Commands: {commands}.",
            name=wanted[:40], did_you_mean=did_you_mean(wanted, names),
            commands=", ".join(names),
        ))
    lines = [f"{prefix}{c.usage} — {tr.gettext(c.summary)}" for c in request.allowed]
    elsewhere = request.in_rooms
    if elsewhere is not None:
        lines.append(tr.ngettext(
            "In your room ({rooms}), type:", "In your rooms ({rooms}), type:",
            len(elsewhere.rooms), rooms=some_of(elsewhere.rooms),
        ))
        lines += [
            f"{elsewhere.prefix}{c.usage} — {tr.gettext(c.summary)}" for c in elsewhere.commands
        ]
    return Reply("\n".join(lines))


# --- what rooms and joiners are told (bot.announce) ------------------------------------------
# In the rooms' language (rooms.lang); English by default, as tests and scripts quote them.


def attached_sentence(name: str, url: str, tr: Tr = ENGLISH) -> str:
    """Said in the room when its add-in changed (attach, a new URL)."""
    return tr.gettext("This room's add-in is now “{name}”: {url}", name=name, url=url)


def welcome_sentence(name: str, url: str, tr: Tr = ENGLISH) -> str:
    """Said to a joiner, and to `show`: what the room's add-in is, with nothing changed."""
    return tr.gettext("This room's add-in is “{name}”: {url}", name=name, url=url)


def no_addin_sentence(tr: Tr) -> str:
    return tr.gettext("This room has no add-in.")


def detached_sentence(
    name: str | None, tr: Tr = ENGLISH, *, unregistered: bool = False
) -> str:
    if unregistered and name:
        return tr.gettext("This room no longer has an add-in: “{name}” was unregistered.",
                          name=name)
    return tr.gettext("This room no longer has an add-in.")


# --- a room's own managers, the subject pin, leaving, muting ---------------------------------
# In the asker's language; English by default, as tests quote them.


def managers_list(room: str, managers: Iterable[str], tr: Tr = ENGLISH) -> str:
    named = sorted(managers)
    if not named:
        return tr.gettext(
            "{room} has no named managers: its owners and admins manage it. An owner names "
            "one with `managers add <jid>`.", room=room,
        )
    return tr.gettext("Named managers of {room} (besides its owners and admins): {managers}.",
                      room=room, managers=", ".join(named))


def managers_changed(room: str, added: Iterable[str], removed: Iterable[str],
                     managers: Iterable[str], tr: Tr = ENGLISH) -> str:
    said = [tr.gettext("{jid} may now attach and detach add-ins in {room}.", jid=jid, room=room)
            for jid in added]
    said += [tr.gettext("{jid} is no longer a named manager of {room}.", jid=jid, room=room)
             for jid in removed]
    return " ".join([*said, managers_list(room, managers, tr)])


def pin_changed(room: str, tr: Tr = ENGLISH, *, pin: bool, attached: bool) -> str:
    if not pin:
        return tr.gettext("The add-in is no longer kept on the subject of {room}.", room=room)
    if not attached:
        return tr.gettext(
            "The add-in will be kept at the end of the subject of {room} once one is "
            "attached.", room=room,
        )
    return tr.gettext("The add-in is kept at the end of the subject of {room}.", room=room)


def subject_tail(name: str, url: str) -> str:
    """What the bot keeps at the end of a pinned room's subject (after ` · `): no words."""
    return f"{name}: {url}"


def goodbye_sentence(tr: Tr = ENGLISH, *, addin: bool = True) -> str:
    """Said in the room when an owner sends the bot away (`!addin leave`); `addin`: the
    room has one (kept attached, but not announced while the bot is away)."""
    if not addin:
        return tr.gettext(
            "Goodbye: an owner of this room asked the bot to leave. An addinbot admin's "
            "`join`, or a new invitation from an owner, brings the bot back."
        )
    return tr.gettext(
        "Goodbye: an owner of this room asked the bot to leave. Its add-in stays attached; "
        "an addinbot admin's `join`, or a new invitation from an owner, brings the bot back."
    )


def autojoin_refusal(room: str) -> Msg:
    return msg(
        "{room} is in the bot's configuration (rooms.autojoin), so it would come back at "
        "its next start: ask the bot's operator to remove it there.", room=room,
    )


def muted(where: str | None, tr: Tr = ENGLISH, *, changed: bool, undo: str = "unmute") -> str:
    """`mute`: `where` is the room, or None for every room; `undo` is the command that
    undoes it, as the sender types it where they asked (`!addin unmute` in the room)."""
    if where is None:
        if not changed:
            return tr.gettext("You are already not sent the add-in's link when you join any room.")
        return tr.gettext(
            "You will not be sent the add-in's link privately when you join any room; "
            "`unmute all` to be sent it again. What is said in a room still reaches you."
        )
    if not changed:
        return tr.gettext("You are already not sent the add-in's link when you join {room}.",
                          room=where)
    return tr.gettext(
        "You will not be sent the add-in's link privately when you join {room}; "
        "`{undo}` to be sent it again. What is said in a room still reaches you.",
        room=where, undo=undo,
    )


def unmuted(where: str | None, tr: Tr = ENGLISH, *, changed: bool) -> str:
    if where is None:
        if not changed:
            return tr.gettext("You were not muted in every room: nothing changed.")
        return tr.gettext("You will be sent the add-in's link again when you join a room.")
    if not changed:
        return tr.gettext("You were not muted in {room}: nothing changed.", room=where)
    return tr.gettext("You will be sent the add-in's link again when you join {room}.",
                      room=where)


def still_muted_everywhere(tr: Tr = ENGLISH) -> str:
    return tr.gettext(" You are still muted in every room (`unmute all` by direct message).")


# --- invitations (bot.invitations): what the inviter is told -----------------------------------
# A refusal is a Msg, said in the invitation's xml:lang by the edge that declines it (and
# recorded in English); the thanks is said in that language here.


def duration(seconds: float) -> str:
    """“45 s”, “10 min”, “23 h”: a wait or a period, rounded up to its unit (unit symbols,
    the same in every language the bot speaks)."""
    seconds = max(1, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{math.ceil(seconds / 60)} min"
    return f"{math.ceil(seconds / 3600)} h"


def invitation_accepted(room: str, tr: Tr) -> str:
    """To the inviter, by direct message, once the room is remembered."""
    return tr.gettext(
        "Thanks for the invitation: the bot now serves {room} and will rejoin it after "
        "restarts. Attach an add-in there with “!addin attach <name>” (“!addin list” shows "
        "them).", room=room,
    )


def invitation_hidden_jids(room: str) -> Msg:
    """Declined after a look: the room hides its occupants' real JIDs from the bot."""
    return msg(
        "{room} does not show the bot its occupants' real addresses, so it cannot tell "
        "that you own or administer it. Give the bot the admin affiliation in {room} (it "
        "then sees them), or make the room's real JIDs visible to everyone, and invite it "
        "again.", room=room,
    )


def invitation_room_refused(room: str, condition: str) -> Msg:
    """Declined: the room would not let the bot in to look."""
    if condition == "registration-required":
        return msg(
            "{room} is members-only and the bot is not a member. Give the bot the member "
            "affiliation in {room} and invite it again.", room=room,
        )
    if condition == "forbidden":
        return msg("{room} has banned the bot. Lift the ban and invite it again.", room=room)
    return msg("the room refused the bot ({condition}).", condition=condition)


def invitations_too_fast(most: int, window_s: float, wait_s: float) -> Msg:
    """The sender's rate limit (commands and invitations together) is reached."""
    window = f"{window_s:g}"
    return msg(
        "Too many invitations from you: at most {most} commands and invitations every "
        "{window} s. This one was not looked at, nor will any sent in the next "
        "{wait} be; the bot says nothing more until then.",
        most=most, window=window, wait=duration(wait_s),
    )


def invitations_too_many(most: int, window_s: float, wait_s: float) -> Msg:
    """One inviter has had the bot look at as many rooms as it will in a window."""
    return msg_n(
        "Too many invitations from you: the bot looks at {n} room every "
        "{window} for one person. Ask an addinbot admin to invite it, or try "
        "again in {wait}; the bot says nothing more until then.",
        "Too many invitations from you: the bot looks at {n} rooms every "
        "{window} for one person. Ask an addinbot admin to invite it, or try "
        "again in {wait}; the bot says nothing more until then.",
        most, window=duration(window_s), wait=duration(wait_s),
    )


def invitations_all_busy(most: int, window_s: float, wait_s: float) -> Msg:
    """Everyone's invitations together have had the bot look at as many rooms as it will."""
    return msg_n(
        "the bot has looked at {n} room for invitations in the last "
        "{window}, as many as it will. Ask an addinbot admin to invite it, or "
        "try again in {wait}.",
        "the bot has looked at {n} rooms for invitations in the last "
        "{window}, as many as it will. Ask an addinbot admin to invite it, or "
        "try again in {wait}.",
        most, window=duration(window_s), wait=duration(wait_s),
    )


def invitation_cooling(room: str, ago_s: float, cooldown_s: float) -> Msg:
    """The room was looked at a moment ago (declined): not again so soon."""
    return msg(
        "the bot looked at {room} {ago} ago and looks at a room at most once "
        "every {cooldown}. Try again in {wait}, or ask "
        "an addinbot admin to invite it.",
        room=room, ago=duration(ago_s), cooldown=duration(cooldown_s),
        wait=duration(cooldown_s - ago_s),
    )
