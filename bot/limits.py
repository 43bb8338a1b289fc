"""Rate limits: how many commands one sender, and one room, may send in a window.

Over the limit a sender gets one notice, then silence until the window has passed, so a
flood costs the bot a dictionary look-up per message and delays nobody else.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


class Verdict(enum.Enum):
    ALLOW = "allow"
    NOTICE = "notice"  # refused; say so once
    SILENT = "silent"  # refused; already told


@dataclass
class _Window:
    times: deque[float] = field(default_factory=deque)
    told: bool = False


class RateLimit:
    """At most `count` events per `window_s` seconds for each key (a sliding window)."""

    def __init__(
        self, count: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.count = count
        self.window_s = window_s
        self.clock = clock
        self._keys: dict[str, _Window] = {}
        self._checks = 0

    def check(self, key: str) -> Verdict:
        if self.count <= 0:
            return Verdict.ALLOW  # 0 turns the limit off
        now = self.clock()
        self._checks += 1
        if self._checks % 1024 == 0:
            self.prune()
        window = self._keys.setdefault(key, _Window())
        while window.times and now - window.times[0] >= self.window_s:
            window.times.popleft()
        if len(window.times) < self.count:
            window.times.append(now)
            window.told = False
            return Verdict.ALLOW
        if window.told:
            return Verdict.SILENT
        window.told = True
        return Verdict.NOTICE

    def retry_after(self, key: str) -> float:
        window = self._keys.get(key)
        if window is None or not window.times:
            return 0.0
        return max(0.0, self.window_s - (self.clock() - window.times[0]))

    def prune(self) -> None:
        """Forget keys whose window has passed (called now and then to bound memory)."""
        now = self.clock()
        stale = [
            key for key, window in self._keys.items()
            if not window.times or now - window.times[-1] >= self.window_s
        ]
        for key in stale:
            del self._keys[key]
