"""Per-key rate limits: requests/minute, tokens/minute, concurrency. (Interface; see Limiter.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from state.registry import ApiKey


class RateLimited(Exception):
    """A limit was hit; carries Retry-After seconds and x-ratelimit-* headers."""

    def __init__(self, message: str, retry_after: float, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.headers = headers


@dataclass
class Admission:
    """One admitted request: add its tokens when known, release it when done."""

    key: ApiKey
    headers: dict[str, str] = field(default_factory=dict)
    released: bool = False

    def add_tokens(self, n: int) -> None:
        """Count tokens the request used toward the key's tokens-per-minute."""

    def release(self) -> None:
        """Free the concurrency slot (idempotent)."""
        self.released = True


class Limiter:
    """Admits or refuses requests per key. Placeholder: admits everything."""

    def admit(self, key: ApiKey) -> Admission:
        """Admit a request or raise RateLimited."""
        return Admission(key)
