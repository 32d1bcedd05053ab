"""Failed-login throttling per client IP and per user name.

Per IP: exponential back-off after FREE_ATTEMPTS failures, up to MAX_BACKOFF. Per user name
(shared by every client, so anyone can push it): the same start, but capped at
USER_MAX_BACKOFF seconds, so a stranger's failures slow the real admin by a few seconds at
most and can never lock them out. A success forgets the counters of its IP and user name.

Attempts for the same key take turns (`turn`): the next one checks `wait` only after the
previous one's slow password check has been counted, so concurrent guesses cannot all slip
through before the first failure is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

FREE_ATTEMPTS = 5  # failures allowed before the exponential back-off starts
MAX_BACKOFF = 900.0  # seconds, per client IP
USER_MAX_BACKOFF = 4.0  # seconds, per user name (any client can push this one)
FORGET_AFTER = 900.0  # seconds without a failure reset the count
USER_PREFIX = "user:"


class Throttle:
    """Failed-login counts per IP and per user name, with exponential back-off."""

    def __init__(self) -> None:
        self._fails: dict[str, tuple[int, float]] = {}
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def wait(self, keys: list[str], now: float) -> float:
        """Seconds until another attempt is allowed (0 = now)."""
        longest = 0.0
        for k in keys:
            count, last = self._fails.get(k, (0, 0.0))
            if count < FREE_ATTEMPTS or now - last > FORGET_AFTER:
                continue
            cap = USER_MAX_BACKOFF if k.startswith(USER_PREFIX) else MAX_BACKOFF
            delay = min(2.0 ** (count - FREE_ATTEMPTS), cap)
            longest = max(longest, last + delay - now)
        return longest

    def fail(self, keys: list[str], now: float) -> None:
        """Count one failed attempt."""
        if len(self._fails) > 10_000:  # bound memory under a spray of user names
            self._fails = {k: v for k, v in self._fails.items() if now - v[1] < FORGET_AFTER}
        for k in keys:
            count, last = self._fails.get(k, (0, 0.0))
            count = 0 if now - last > FORGET_AFTER else count
            self._fails[k] = (count + 1, now)

    def success(self, keys: list[str]) -> None:
        """Forget failures after a successful login."""
        for k in keys:
            self._fails.pop(k, None)

    @asynccontextmanager
    async def turn(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Hold every key's lock (in a fixed order): one attempt per key at a time."""
        ordered = sorted(set(keys))
        for k in ordered:
            lock, users = self._locks.get(k, (None, 0))
            self._locks[k] = (lock or asyncio.Lock(), users + 1)
        held: list[asyncio.Lock] = []
        try:
            for k in ordered:
                lock = self._locks[k][0]
                await lock.acquire()
                held.append(lock)
            yield
        finally:
            for lock in reversed(held):
                lock.release()
            for k in ordered:
                lock, users = self._locks[k]
                if users <= 1:
                    del self._locks[k]
                else:
                    self._locks[k] = (lock, users - 1)
