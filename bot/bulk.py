"""Add-ins in bulk, as files: `addinbot addin export` and `addinbot addin import`.

A file is JSON (an array of objects, one per line as export writes it) or CSV (a header
line, then one add-in per line), with the fields `pool`, `name` and `url`; `rooms` (how many
rooms use it, as `addin list --json` and export write it) is read and ignored. A row may
leave out `pool` where the importer gives one (--pool) or one pool is served.

An import is checked as a whole before anything is written: every problem is reported
with the line it is on (ImportRefused), and then nothing changes. Otherwise each row
registers a new add-in or gives an existing one (same pool, name compared as everywhere) its
URL, all in one transaction with one audit row per change (bot.addins.import_rows). Nothing
is ever unregistered or renamed by an import.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Literal

from bot.errors import CommandError, ImportRefused
from bot.names import name_key, name_skeleton, resolve_pool, validate_name
from bot.urls import validate_url
from bot.values import Listed, Planned, Row

Format = Literal["json", "csv"]
FORMATS: tuple[Format, ...] = ("json", "csv")
FIELDS = ("pool", "name", "url")
IGNORED = ("rooms",)  # written by `addin list --json` and export; not imported
MOST_PROBLEMS = 50  # reported of one file; the rest are counted


def format_of(path: str, given: str | None) -> Format:
    """--format if given, else by the file's extension (.json, .csv)."""
    if given is not None:
        return "csv" if given == "csv" else "json"
    if path.lower().endswith(".csv"):
        return "csv"
    if path.lower().endswith(".json"):
        return "json"
    raise CommandError(
        f"Cannot tell the format of {path}: name it .json or .csv, or give --format."
    )


# --- writing -------------------------------------------------------------------------------


def as_data(found: Sequence[Listed], *, rooms: bool) -> list[dict[str, object]]:
    """The add-ins as `addin list --json` (with `rooms`) and export (without) write them."""
    return [
        {"pool": each.pool, "name": each.name, "url": each.url} | (
            {"rooms": each.rooms} if rooms else {}
        )
        for each in found
    ]


def written(found: Sequence[Listed], form: Format) -> str:
    """The export file: JSON with one add-in a line (so a line number finds it), or CSV."""
    if form == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(FIELDS)
        writer.writerows((each.pool, each.name, each.url) for each in found)
        return out.getvalue()
    rows = [json.dumps(item, ensure_ascii=False) for item in as_data(found, rooms=False)]
    return "[\n" + ",\n".join(f"  {row}" for row in rows) + ("\n]\n" if rows else "]\n")


# --- reading -------------------------------------------------------------------------------


def rows(text: str, form: Format, *, served: Sequence[str], pool: str | None) -> list[Row]:
    """The file's add-ins, each checked (name, URL, pool; none given twice), or
    ImportRefused naming every bad line. `pool`: for rows that name none (--pool)."""
    raw = _csv_items(text) if form == "csv" else _json_items(text)
    problems: list[tuple[int, str]] = []
    checked: list[Row] = []
    seen: dict[tuple[str, str], tuple[int, str]] = {}  # (pool, key or skeleton) -> line, name
    for line, item in raw:
        try:
            row = _row(line, item, served=served, pool=pool)
        except CommandError as exc:
            problems.append((line, exc.reason))
            continue
        for key in (name_key(row.name), "skeleton:" + name_skeleton(row.name)):
            earlier = seen.get((row.pool, key))
            if earlier is not None:
                problems.append((line, f"“{row.name}” is already on line {earlier[0]} "
                                       f"(“{earlier[1]}”) for {row.pool}."))
                break
        else:
            seen[(row.pool, name_key(row.name))] = (line, row.name)
            seen[(row.pool, "skeleton:" + name_skeleton(row.name))] = (line, row.name)
            checked.append(row)
    if problems:
        raise ImportRefused(problems)
    return checked


class Bad:
    """A row already known to be wrong while the file was read, and why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _row(line: int, item: object, *, served: Sequence[str], pool: str | None) -> Row:
    if isinstance(item, Bad):
        raise CommandError(item.reason)
    if not isinstance(item, dict):
        raise CommandError("Each add-in is an object with “name” and “url” (and “pool”).")
    unknown = sorted(str(key) for key in item if key not in FIELDS + IGNORED)
    if unknown:
        raise CommandError(
            f"Unknown field “{unknown[0][:40]}”; the fields are {', '.join(FIELDS)}."
        )
    values: dict[str, str] = {}
    for field in FIELDS:
        value = item.get(field)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise CommandError(f"“{field}” must be text.")
        values[field] = value
    for needed in ("name", "url"):
        if needed not in values:
            raise CommandError(f"“{needed}” is missing.")
    given = values.get("pool")
    if given is not None and pool is not None and given.strip().lower() != pool:
        raise CommandError(f"The pool {given[:80]} is not {pool} (--pool).")
    chosen = resolve_pool(served, given or pool, spelled="--pool POOL")
    return Row(line, chosen, validate_name(values["name"]), validate_url(values["url"]))


def _line_at(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _json_items(text: str) -> list[tuple[int, object]]:
    """The items of a JSON array, each with the line it starts on."""
    decoder = json.JSONDecoder()
    position = _skip_space(text, 1 if text.startswith("\ufeff") else 0)
    if text[position : position + 1] != "[":
        raise ImportRefused([(_line_at(text, position), "A JSON import is an array of add-ins: "
                              '[{"pool": …, "name": …, "url": …}, …].')])
    items: list[tuple[int, object]] = []
    position = _skip_space(text, position + 1)
    if text[position : position + 1] == "]":
        position += 1
    else:
        while True:
            try:
                item, end = decoder.raw_decode(text, position)
            except json.JSONDecodeError as exc:
                raise ImportRefused([(exc.lineno, f"Not JSON: {exc.msg}.")]) from None
            items.append((_line_at(text, position), item))
            position = _skip_space(text, end)
            mark = text[position : position + 1]
            position = _skip_space(text, position + 1)
            if mark == "]":
                break
            if mark != ",":
                raise ImportRefused([(_line_at(text, position), "Not JSON: expected , or ].")])
    if _skip_space(text, position) < len(text):
        raise ImportRefused([(_line_at(text, position), "Not JSON: more after the array.")])
    return items


def _csv_items(text: str) -> list[tuple[int, object]]:
    """The rows of a CSV file with a header line, each as a dict, with the line it starts on."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise ImportRefused([(1, "The CSV file is empty: its first line names the fields "
                                     f"({','.join(FIELDS)}).")])
        columns = [name.strip().lower() for name in header]
        unknown = [name for name in columns if name not in FIELDS + IGNORED]
        if unknown or "name" not in columns or "url" not in columns:
            said = f" Unknown field “{unknown[0][:40]}”." if unknown else ""
            raise ImportRefused([(1, "The first line names the fields: name, url and "
                                     f"(if you like) pool.{said}")])
        items: list[tuple[int, object]] = []
        last = reader.line_num
        for values in reader:
            line, last = last + 1, reader.line_num
            if not any(value.strip() for value in values):
                continue  # a blank line
            if len(values) != len(columns):
                items.append((line, Bad(f"{len(values)} fields, but the first line names "
                                        f"{len(columns)}.")))
                continue
            items.append((line, dict(zip(columns, values, strict=True))))
    except csv.Error as exc:
        raise ImportRefused([(reader.line_num, f"Not CSV: {exc}.")]) from None
    return items


# --- saying what was done ------------------------------------------------------------------


def plan_lines(plan: Sequence[Planned], *, dry_run: bool) -> str:
    """One line per change, then the totals."""
    lines = []
    for each in plan:
        if each.action == "register":
            lines.append(f"register “{each.name}” in {each.pool}: {each.url}")
        elif each.action == "update-url":
            lines.append(f"update “{each.name}” in {each.pool}: {each.was} -> {each.url}")
    new = sum(each.action == "register" for each in plan)
    moved = sum(each.action == "update-url" for each in plan)
    same = len(plan) - new - moved
    if dry_run:
        lines.append(f"Would register {new}, update {moved}; {same} unchanged. "
                     "Nothing was changed (--dry-run).")
    else:
        lines.append(f"Registered {new}, updated {moved}; {same} unchanged.")
    return "\n".join(lines)
