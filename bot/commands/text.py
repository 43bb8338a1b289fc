"""How results read in chat and on the command line."""

from __future__ import annotations

from collections.abc import Iterable
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


def addin_details(info: AddinInfo) -> str:
    rooms = some_of(info.rooms) if info.rooms else "none"
    return "\n".join([
        f"“{info.name}”",
        f"URL: {info.url}",
        f"Pool: {info.pool}",
        f"Registered by {info.created_by} on {when(info.created_at)}",
        f"Rooms ({len(info.rooms)}): {rooms}",
    ])


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


def room_lines(rooms: list[RoomInfo]) -> str:
    if not rooms:
        return "The bot serves no rooms."
    lines = []
    for room in rooms:
        addin = f"“{room.addin}” — {room.url}" if room.addin else "no add-in"
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
