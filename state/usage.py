"""Usage records: one per API request. (Storage: see UsageRecorder.)"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class RequestRecord:
    """Everything recorded about one /v1 request, filled in as the request proceeds."""

    ts: float = field(default_factory=time.time)
    key_id: str | None = None
    key_name: str | None = None
    endpoint: str = ""
    model: str | None = None  # as requested
    ollama_model: str | None = None  # resolved
    stream: bool = False
    status: int = 200
    error_code: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    load_ms: float | None = None
    tokens_per_s: float | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    cancelled: bool = False
    request_id: str | None = None
    prompt_text: str | None = None  # only with content logging on
    response_text: str | None = None


class UsageRecorder:
    """Collects records. Placeholder until the SQLite store lands: keeps the last records."""

    def __init__(self) -> None:
        self.recent: list[RequestRecord] = []

    def record(self, rec: RequestRecord) -> None:
        """Queue one record; never blocks and never raises."""
        self.recent.append(rec)
        del self.recent[:-1000]
