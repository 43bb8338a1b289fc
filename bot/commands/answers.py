"""Answers to the commands that only read, kept until the store changes.

`list` and `!addin` are most of what people send, and their answers change only when the
store does. Kept here, they are answered on the event loop, without a trip to a database
thread. An answer is kept with the store's version from before it was read, and served only
while that version is still current. The version is a count, moved on the loop (`changed`)
by the announcer whenever it takes in changes:

- as soon as an operation of this process returns the changes it committed (before its
  sender is answered);
- when the announcer's follower reads the audit row of a change made elsewhere (the command
  line, another process), within announce.POLL_S of its commit.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

# At most this many answers, and this many characters in all, are kept at once (a `list`
# page can be ~40,000 characters of long URLs); when either is reached, all are dropped and
# kept afresh.
MOST_KEPT = 1000
MOST_KEPT_CHARS = 1_000_000

_A = TypeVar("_A")
Version = int


class Answers(Generic[_A]):
    def __init__(self, size: Callable[[_A], int]) -> None:
        self._size = size  # an answer's size in characters
        self._version: Version = 0  # how many times the store was seen to change
        self._at: Version = self.version()  # the version every kept answer was read at
        self._kept: dict[Hashable, _A] = {}
        self._chars = 0

    def version(self) -> Version:
        return self._version

    def get(self, key: Hashable) -> _A | None:
        self._drop_stale()
        return self._kept.get(key)

    def keep(self, key: Hashable, answer: _A, *, read_at: Version) -> None:
        """Keep `answer`, read from the store at version `read_at`, unless the store has
        changed since (it may already be out of date)."""
        self._drop_stale()
        if read_at != self._at or key in self._kept:
            return
        size = self._size(answer)
        if len(self._kept) >= MOST_KEPT or self._chars + size > MOST_KEPT_CHARS:
            self._clear()
        self._kept[key] = answer
        self._chars += size

    def changed(self) -> None:
        """On the loop: the store changed (the announcer took in changes, whoever made
        them); every answer kept is out of date."""
        self._version += 1

    def __len__(self) -> int:
        self._drop_stale()
        return len(self._kept)

    def _drop_stale(self) -> None:
        now = self.version()
        if now != self._at:
            self._clear()
            self._at = now

    def _clear(self) -> None:
        self._kept.clear()
        self._chars = 0
