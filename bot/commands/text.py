"""How results read in chat and on the command line."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime

from bot import names
from bot.commands.registry import Request
from bot.errors import BadWords, CommandError
from bot.values import AddinInfo, AddinPage, AuditEntry, Removed, Reply, RoomInfo
from bot.wording import did_you_mean, plural, some_of


def registered(info: AddinInfo) -> str:
    return f"Registered “{info.name}” in {info.pool}: {info.url}"


def url_updated(info: AddinInfo) -> str:
    using = len(info.rooms)
    told = f" — the {plural(using, 'room')} using it {'is' if using == 1 else 'are'} told"
    return f"“{info.name}” now points to {info.url}{told if using else ''}"


def renamed(info: AddinInfo) -> str:
    return f"Renamed “{info.was}” to “{info.name}”."


def unregistered(removed: Removed) -> str:
    count = len(removed.rooms)
    if count:
        which = "which was told" if count == 1 else "which were told"
        return (
            f"Unregistered “{removed.name}” and detached it from {plural(count, 'room')}, "
            f"{which}: {some_of(removed.rooms)}."
        )
    return f"Unregistered “{removed.name}”."


def attached(room: RoomInfo, *, served: bool = True) -> str:
    said = f"{room.jid} now has the add-in “{room.addin}”: {room.url}"
    if served:
        return said
    return (
        f"{said}. The bot is not in {room.jid}, so nobody there is told; send the bot "
        f"`join {room.jid}` to serve the room."
    )


def detached(room: str, name: str) -> str:
    return f"{room} no longer has the add-in “{name}”."


def joined(room: str, *, changed: bool) -> str:
    if not changed:
        return f"The bot already serves {room}."
    return f"Joining {room}; the bot will rejoin it after restarts."


def left(room: str, *, changed: bool) -> str:
    return f"Leaving {room}." if changed else f"The bot does not serve {room}."


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def count(raw: str | None, *, default: int, most: int) -> int:
    if raw is None:
        return default
    if not raw.isdecimal() or not 1 <= int(raw) <= most:  # "²".isdigit(), but int() refuses it
        raise BadWords(f"Give a number from 1 to {most}, not “{raw[:20]}”.")
    return int(raw)


def page_number(raw: str | None) -> int:
    return count(raw, default=1, most=1_000_000)


def addin_page(page: AddinPage, *, more: str) -> str:
    if not page.total:
        return f"No add-ins are registered in {page.pool}."
    head = f"Add-ins in {page.pool} ({page.total}; page {page.page} of {page.pages}):"
    lines = [head] + [
        f"• {name} — {url} ({uses} room{'' if uses == 1 else 's'})"
        for name, url, uses in page.items
    ]
    if page.page < page.pages:
        lines.append(f"More: {more}")
    return "\n".join(lines)


def pools_pages(found: list[AddinPage], page: int, pages: int, *, more: str) -> str:
    """One page of every served pool's add-ins, grouped by pool."""
    lines = [f"Add-ins of every served pool (page {page} of {pages}):"] if pages > 1 else []
    for each in found:
        if not each.total:
            lines.append(f"No add-ins are registered in {each.pool}.")
            continue
        lines.append(f"{each.pool} ({plural(each.total, 'add-in')}):")
        lines += [
            f"• {name} — {url} ({plural(uses, 'room')})" for name, url, uses in each.items
        ]
    if page < pages:
        lines.append(f"More: {more}")
    return "\n".join(lines)


def addin_details(info: AddinInfo, *, managers: Mapping[str, Iterable[str]] | None = None
                  ) -> str:
    rooms = some_of(info.rooms) if info.rooms else "none"
    lines = [
        f"“{info.name}”",
        f"URL: {info.url}",
        f"Pool: {info.pool}",
        f"Registered by {info.created_by} on {when(info.created_at)}",
        f"Rooms ({len(info.rooms)}): {rooms}",
    ]
    named = managers or {}
    lines += [
        f"Named managers of {room}: {', '.join(sorted(named[room]))}"
        for room in info.rooms if named.get(room)
    ]
    return "\n".join(lines)


def audit_lines(entries: Iterable[AuditEntry]) -> str:
    lines = [audit_line(entry) for entry in entries]
    return "\n".join(lines) if lines else "No changes have been recorded yet."


def audit_line(entry: AuditEntry) -> str:
    # One line, whatever an older version or another process stored.
    return names.audit_line(f"{when(entry.at)}  {entry.actor} ({entry.via})  {audit_what(entry)}")


def audit_what(entry: AuditEntry) -> str:
    """What changed, in one audit line's words: “attach “Wiki” in dev@…  — https://…”."""
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


def room_lines(rooms: list[RoomInfo], *, pin_default: bool = False) -> str:
    if not rooms:
        return "The bot serves no rooms."
    lines = []
    for room in rooms:
        addin = f"“{room.addin}” — {room.url}" if room.addin else "no add-in"
        if room.managers:
            addin += f"; managers: {', '.join(room.managers)}"
        if (room.pin if room.pin is not None else pin_default):
            addin += "; pinned to the subject"
        lines.append(f"• {room.jid}{room_state(room)}: {addin}")
    return "\n".join(lines)


def room_state(room: RoomInfo) -> str:
    """“ (not joined: why)” for a room the bot does not serve now; nothing for one it does."""
    why = f": {room.stopped_reason}" if room.stopped_reason else ""
    return "" if room.joined else f" (not joined{why})"


def help_reply(request: Request) -> Reply:
    """Only the commands the sender may run; or one command's usage."""
    prefix = request.front.prefix
    wanted = request.args.get("command")
    if wanted is not None:
        for command in request.allowed:
            if command.name == wanted.lower():
                return Reply(f"Usage: {prefix}{command.usage} — {command.summary}")
        names = [c.name for c in request.allowed]
        raise CommandError(
            f"No command “{wanted[:40]}” that you may run.{did_you_mean(wanted, names)} "
            f"Commands: {', '.join(names)}."
        )
    lines = [f"{prefix}{c.usage} — {c.summary}" for c in request.allowed]
    elsewhere = request.in_rooms
    if elsewhere is not None:
        lines.append(
            f"In your {'room' if len(elsewhere.rooms) == 1 else 'rooms'} "
            f"({some_of(elsewhere.rooms)}), type:"
        )
        lines += [f"{elsewhere.prefix}{c.usage} — {c.summary}" for c in elsewhere.commands]
    return Reply("\n".join(lines))


# --- what rooms and joiners are told (bot.announce) ------------------------------------------


def attached_sentence(name: str, url: str) -> str:
    """Said in the room when its add-in changed (attach, a new URL)."""
    return f"This room's add-in is now “{name}”: {url}"


def welcome_sentence(name: str, url: str) -> str:
    """Said to a joiner, and to `show`: what the room's add-in is, with nothing changed."""
    return f"This room's add-in is “{name}”: {url}"


def detached_sentence(name: str | None, *, unregistered: bool = False) -> str:
    if unregistered and name:
        return f"This room no longer has an add-in: “{name}” was unregistered."
    return "This room no longer has an add-in."


# --- a room's own managers, the subject pin, leaving, muting ---------------------------------


def managers_list(room: str, managers: Iterable[str]) -> str:
    named = sorted(managers)
    if not named:
        return (
            f"{room} has no named managers: its owners and admins manage it. An owner names "
            f"one with `managers add <jid>`."
        )
    return f"Named managers of {room} (besides its owners and admins): {', '.join(named)}."


def managers_changed(room: str, added: Iterable[str], removed: Iterable[str],
                     managers: Iterable[str]) -> str:
    said = [f"{jid} may now attach and detach add-ins in {room}." for jid in added]
    said += [f"{jid} is no longer a named manager of {room}." for jid in removed]
    return " ".join([*said, managers_list(room, managers)])


def pin_changed(room: str, *, pin: bool, attached: bool) -> str:
    if not pin:
        return f"The add-in is no longer kept on the subject of {room}."
    if not attached:
        return (
            f"The add-in will be kept at the end of the subject of {room} once one is "
            f"attached."
        )
    return f"The add-in is kept at the end of the subject of {room}."


def subject_tail(name: str, url: str) -> str:
    """What the bot keeps at the end of a pinned room's subject (after ` · `)."""
    return f"{name}: {url}"


def goodbye_sentence() -> str:
    """Said in the room when an owner sends the bot away (`!addin leave`)."""
    return (
        "Goodbye: an owner of this room asked the bot to leave. Its add-in stays attached; "
        "an addinbot admin's `join`, or a new invitation from an owner, brings the bot back."
    )


def autojoin_refusal(room: str) -> str:
    return (
        f"{room} is in the bot's configuration (rooms.autojoin), so it would come back at "
        f"its next start: ask the bot's operator to remove it there."
    )


def muted(where: str | None, *, changed: bool) -> str:
    """`mute`: `where` is the room, or None for every room."""
    place = where or "any room"
    if not changed:
        return f"You are already not sent the add-in's link when you join {place}."
    again = "`unmute`" if where else "`unmute all`"
    return (
        f"You will not be sent the add-in's link privately when you join {place}; "
        f"{again} to be sent it again. What is said in a room still reaches you."
    )


def unmuted(where: str | None, *, changed: bool) -> str:
    place = where or "every room"
    if not changed:
        return f"You were not muted in {place}: nothing changed."
    return f"You will be sent the add-in's link again when you join {where or 'a room'}."


def still_muted_everywhere() -> str:
    return " You are still muted in every room (`unmute all` by direct message)."


# --- invitations (bot.invitations): what the inviter is told -----------------------------------


def duration(seconds: float) -> str:
    """“45 s”, “10 min”, “23 h”: a wait or a period, rounded up to its unit."""
    seconds = max(1, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{math.ceil(seconds / 60)} min"
    return f"{math.ceil(seconds / 3600)} h"


def invitation_accepted(room: str) -> str:
    """To the inviter, by direct message, once the room is remembered."""
    return (
        f"Thanks for the invitation: the bot now serves {room} and will rejoin it after "
        f"restarts. Attach an add-in there with “!addin attach <name>” (“!addin list” shows "
        f"them)."
    )


def invitation_hidden_jids(room: str) -> str:
    """Declined after a look: the room hides its occupants' real JIDs from the bot."""
    return (
        f"{room} does not show the bot its occupants' real addresses, so it cannot tell "
        f"that you own or administer it. Give the bot the admin affiliation in {room} (it "
        f"then sees them), or make the room's real JIDs visible to everyone, and invite it "
        f"again."
    )


def invitation_room_refused(room: str, condition: str) -> str:
    """Declined: the room would not let the bot in to look."""
    if condition == "registration-required":
        return (
            f"{room} is members-only and the bot is not a member. Give the bot the member "
            f"affiliation in {room} and invite it again."
        )
    if condition == "forbidden":
        return f"{room} has banned the bot. Lift the ban and invite it again."
    return f"the room refused the bot ({condition})."


def invitations_too_fast(most: int, window_s: float, wait_s: float) -> str:
    """The sender's rate limit (commands and invitations together) is reached."""
    return (
        f"Too many invitations from you: at most {most} commands and invitations every "
        f"{window_s:g} s. This one was not looked at, nor will any sent in the next "
        f"{duration(wait_s)} be; the bot says nothing more until then."
    )


def invitations_too_many(most: int, window_s: float, wait_s: float) -> str:
    """One inviter has had the bot look at as many rooms as it will in a window."""
    return (
        f"Too many invitations from you: the bot looks at {plural(most, 'room')} every "
        f"{duration(window_s)} for one person. Ask an addinbot admin to invite it, or try "
        f"again in {duration(wait_s)}; the bot says nothing more until then."
    )


def invitations_all_busy(most: int, window_s: float, wait_s: float) -> str:
    """Everyone's invitations together have had the bot look at as many rooms as it will."""
    return (
        f"the bot has looked at {plural(most, 'room')} for invitations in the last "
        f"{duration(window_s)}, as many as it will. Ask an addinbot admin to invite it, or "
        f"try again in {duration(wait_s)}."
    )


def invitation_cooling(room: str, ago_s: float, cooldown_s: float) -> str:
    """The room was looked at a moment ago (declined): not again so soon."""
    return (
        f"the bot looked at {room} {duration(ago_s)} ago and looks at a room at most once "
        f"every {duration(cooldown_s)}. Try again in {duration(cooldown_s - ago_s)}, or ask "
        f"an addinbot admin to invite it."
    )
