"""Failed-login throttling per client IP and per user name, with exponential back-off."""

from __future__ import annotations

FREE_ATTEMPTS = 5  # failures allowed before the exponential back-off starts
MAX_BACKOFF = 900.0  # seconds
FORGET_AFTER = 900.0  # seconds without a failure reset the count


class Throttle:
    """Failed-login counts per IP and per user name, with exponential back-off."""

    def __init__(self) -> None:
        self._fails: dict[str, tuple[int, float]] = {}

    def wait(self, keys: list[str], now: float) -> float:
        """Seconds until another attempt is allowed (0 = now)."""
        longest = 0.0
        for k in keys:
            count, last = self._fails.get(k, (0, 0.0))
            if count < FREE_ATTEMPTS or now - last > FORGET_AFTER:
                continue
            delay = min(2.0 ** (count - FREE_ATTEMPTS), MAX_BACKOFF)
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
