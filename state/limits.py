"""Per-key rate limits: requests/minute, tokens/minute, concurrency, with OpenAI's headers.

rpm is a sliding 60-second window of admitted requests. tpm counts the tokens requests really
used (prompt + completion, streaming included), reported through `Admission.add_tokens` as they
become known; a request is refused while the last 60 seconds hold `tpm` tokens or more (a
request in flight can overshoot; the next ones wait). max_concurrency counts admitted requests
not yet released. A refusal raises RateLimited with Retry-After and the `x-ratelimit-*` headers;
an admitted request carries the same headers for its response.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from state.registry import ApiKey

WINDOW = 60.0


class RateLimited(Exception):
    """A limit was hit; carries Retry-After seconds and x-ratelimit-* headers."""

    def __init__(self, message: str, retry_after: float, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.headers = headers


@dataclass
class _Window:
    """One key's recent requests, tokens and requests in flight."""

    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    token_sum: int = 0
    active: int = 0

    def prune(self, now: float) -> None:
        """Forget what left the 60-second window."""
        while self.requests and self.requests[0] <= now - WINDOW:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= now - WINDOW:
            self.token_sum -= self.tokens.popleft()[1]


def duration(seconds: float) -> str:
    """OpenAI's reset format: `20ms`, `7s`, `1m5s`."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    secs = math.ceil(seconds)
    return f"{secs // 60}m{secs % 60}s" if secs >= 60 else f"{secs}s"


@dataclass
class Admission:
    """One admitted request: add its tokens when known, release it when done."""

    key: ApiKey
    headers: dict[str, str] = field(default_factory=dict)
    released: bool = False
    _window: _Window | None = field(default=None, repr=False)
    _clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def add_tokens(self, n: int) -> None:
        """Count tokens the request used toward the key's tokens-per-minute."""
        if self._window is not None and n > 0:
            self._window.tokens.append((self._clock(), int(n)))
            self._window.token_sum += int(n)

    def release(self) -> None:
        """Free the concurrency slot (idempotent)."""
        if not self.released and self._window is not None:
            self._window.active -= 1
        self.released = True


class Limiter:
    """Admits or refuses requests per key id, reading the key's limits at each request."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def admit(self, key: ApiKey) -> Admission:
        """Admit a request or raise RateLimited."""
        if not (key.rpm or key.tpm or key.max_concurrency):
            return Admission(key)
        now = self._clock()
        win = self._windows.setdefault(key.id, _Window())
        win.prune(now)
        if key.max_concurrency and win.active >= key.max_concurrency:
            raise RateLimited(
                f"Too many concurrent requests for API key '{key.name}' (limit "
                f"{key.max_concurrency}); retry when one finishes.",
                1.0,
                self._headers(key, win, now, retry=1.0),
            )
        if key.rpm and len(win.requests) >= key.rpm:
            retry = win.requests[len(win.requests) - key.rpm] + WINDOW - now
            raise RateLimited(
                f"Rate limit reached for API key '{key.name}': {key.rpm} requests "
                f"per minute. Retry in {duration(retry)}.",
                retry,
                self._headers(key, win, now, retry=retry),
            )
        if key.tpm and win.token_sum >= key.tpm:
            retry = self._token_retry(key.tpm, win, now)
            raise RateLimited(
                f"Rate limit reached for API key '{key.name}': {key.tpm} tokens "
                f"per minute. Retry in {duration(retry)}.",
                retry,
                self._headers(key, win, now, retry=retry),
            )
        win.requests.append(now)
        win.active += 1
        return Admission(key, self._headers(key, win, now), _window=win, _clock=self._clock)

    @staticmethod
    def _token_retry(tpm: int, win: _Window, now: float) -> float:
        """Seconds until the window holds fewer than `tpm` tokens."""
        total = win.token_sum
        for ts, n in win.tokens:
            total -= n
            if total < tpm:
                return max(ts + WINDOW - now, 0.001)
        return WINDOW

    @staticmethod
    def _headers(
        key: ApiKey, win: _Window, now: float, retry: float | None = None
    ) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers (and Retry-After on a refusal)."""
        headers: dict[str, str] = {}
        if key.rpm:
            reset = win.requests[0] + WINDOW - now if win.requests else 0.0
            headers["x-ratelimit-limit-requests"] = str(key.rpm)
            headers["x-ratelimit-remaining-requests"] = str(max(key.rpm - len(win.requests), 0))
            headers["x-ratelimit-reset-requests"] = duration(reset)
        if key.tpm:
            reset = win.tokens[0][0] + WINDOW - now if win.tokens else 0.0
            headers["x-ratelimit-limit-tokens"] = str(key.tpm)
            headers["x-ratelimit-remaining-tokens"] = str(max(key.tpm - win.token_sum, 0))
            headers["x-ratelimit-reset-tokens"] = duration(reset)
        if retry is not None:
            headers["Retry-After"] = str(max(1, math.ceil(retry)))
        return headers
