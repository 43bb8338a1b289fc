"""The unit of work: one change's transaction, its audit rows, and how database trouble
reaches the rest of the bot (StoreBusy; a unique-constraint clash as the sentence the user
reads).

Writers on SQLite begin with BEGIN IMMEDIATE (store.database), so they take turns from the
start; on PostgreSQL an audited change takes a transaction-scoped advisory lock first
(`take_turn`). Either way audit ids are handed out in commit order, which the announcer's
follower relies on when it reads the log by id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from bot.errors import CommandError, StoreBusy
from bot.values import Change, Done
from store.database import READ_ONLY

_T = TypeVar("_T")
CHANGES_LOCK = 0x61646462  # "addb": the PostgreSQL advisory lock every audited change takes
_TAKE_TURN = text("SELECT pg_advisory_xact_lock(:key)")


class Unit:
    """One change's transaction: its connection (`rows`, for prebuilt Core statements), an
    ORM session over the same transaction for the changes that want one (made on first use:
    a session costs more than the statements of a plain change), and the changes recorded."""

    def __init__(self, rows: Connection) -> None:
        self.rows = rows
        self.changes: list[Change] = []
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            # It joins the connection's transaction and never commits it: `write` does.
            self._session = Session(
                bind=self.rows, expire_on_commit=False, join_transaction_mode="rollback_only"
            )
        return self._session

    def flush(self) -> None:
        if self._session is not None:
            self._session.flush()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


def write(
    engine: Engine, change: Callable[[Unit], _T], *, conflict: str | None = None,
    audited: bool = True,
) -> Done[_T]:
    """Run `change` in one transaction and commit it; its result and the changes it recorded.
    `conflict`: the sentence for a unique-constraint clash (else it is raised as it is).
    `audited`: it may write audit rows, so it takes its turn (see take_turn)."""
    try:
        with engine.begin() as rows:  # on SQLite, BEGIN IMMEDIATE: writers queue up front
            unit = Unit(rows)
            if audited:
                take_turn(rows)
            try:
                result = change(unit)
                unit.flush()
            finally:
                unit.close()
    except IntegrityError:
        if conflict is None:
            raise
        raise CommandError(conflict) from None
    except OperationalError as exc:
        raise StoreBusy() from exc
    return Done(result, tuple(unit.changes))


def take_turn(rows: Connection) -> None:
    """Audited changes commit one at a time, so that audit ids are in commit order: the
    follower reads the log by id, and an id taken by a change that commits after a later id
    would be passed over. SQLite's BEGIN IMMEDIATE already makes writers take turns; on
    PostgreSQL a transaction-scoped advisory lock does, released at commit."""
    if rows.dialect.name == "postgresql":
        rows.execute(_TAKE_TURN, {"key": CHANGES_LOCK})


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection that only reads, rolled back when the block ends; on SQLite it takes no
    write lock (a plain BEGIN). Database trouble becomes StoreBusy."""
    try:
        with engine.connect() as connection:
            connection.execution_options(**{READ_ONLY: True})
            yield connection
    except OperationalError as exc:
        raise StoreBusy() from exc
