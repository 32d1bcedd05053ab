"""Logging setup: human-readable text or JSON lines on stdout, with the request id, redacted."""

from __future__ import annotations

import json
import logging
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import IO, TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from yarl import URL

if TYPE_CHECKING:  # a runtime import would make `import logs` depend on the whole state package
    from state.config import Config

# The X-Request-ID of the request being handled; set by request_id_middleware for every request.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
REQUEST_ID_HEADER = "X-Request-ID"

# A client-supplied id is kept only if it is short and plain, so it cannot forge log lines.
_VALID_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_MARK = "[REDACTED]"

# Secret shapes redacted from every log line, whatever logged them (why: a stray
# `log.debug("%s", request.headers)` must not leak a key). Order matters: specific first.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # API key secrets: `sk-` and URL-safe random characters.
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"), "sk-" + _MARK),
    # Authorization / Cookie header values, in text or repr()/JSON form.
    (
        re.compile(
            r"(?i)((?:authorization|proxy-authorization|cookie|set-cookie|x-api-key)"
            r"['\"]?\s*[:=]\s*['\"]?)[^'\",\n}]+"
        ),
        r"\1" + _MARK,
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]+"), r"\1 " + _MARK),
    # Credentials inside a URL: scheme://user:password@host.
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^/\s:@]*:)[^@\s/]+@"), r"\1" + _MARK + "@"),
    # password=…, "password": "…", admin_password: …, session_secret=…, token=…
    (
        re.compile(
            r"(?i)((?:password|passwd|secret|token|csrf[_-]?token)['\"]?\s*[:=]\s*"
            r"['\"]?)[^'\"&,\s}]+"
        ),
        r"\1" + _MARK,
    ),
)
# Cheap pre-check: a line without any of these cannot match a pattern above (most lines).
_MAYBE_SECRET = re.compile(
    r"(?i)sk-|authoriz|bearer|cookie|passw|secret|token|x-api-key|"
    r"://[^/\s]*@"
)
_known_secrets: set[str] = set()
_secrets_longest_first: tuple[str, ...] = ()  # sorted once here, not for every log line

log = logging.getLogger(__name__)


def register_secret(value: str | None) -> None:
    """Redact this exact value (a password, the session secret) from all future log lines."""
    global _secrets_longest_first
    if value and len(value) >= 4:
        _known_secrets.add(value)
        _secrets_longest_first = tuple(sorted(_known_secrets, key=len, reverse=True))


def redact(text: str) -> str:
    """Text with every known secret and secret-shaped token replaced by a marker."""
    for secret in _secrets_longest_first:
        if secret in text:
            text = text.replace(secret, _MARK)
    if _MAYBE_SECRET.search(text):
        for pattern, repl in _PATTERNS:
            text = pattern.sub(repl, text)
    return text


# Request ids are unique, not secret: see api.openai.chat_response.fast_random for why not urandom.
_ids = random.Random()


def new_request_id() -> str:
    """A fresh request id: 32 random hex digits (unique, not secret; see fast_random)."""
    return f"{_ids.getrandbits(128):032x}"


def accept_request_id(header: str | None) -> str:
    """The client's X-Request-ID when it is a plain token, else a new id."""
    if header and _VALID_ID.fullmatch(header):
        return header
    return new_request_id()


class ContextFilter(logging.Filter):
    """Adds the current request id to every record and redacts secrets from its text."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach `request_id`; render the message and traceback once, redacted."""
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get() or "-"
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class TextFormatter(logging.Formatter):
    """`2026-01-01 12:00:00,000 INFO name [request-id] message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        """One line per record: a line break inside a message (say, from a model name a client
        sent) is escaped, so nobody can forge a log line. Tracebacks still follow on their own
        lines."""
        if "\n" in record.message or "\r" in record.message:
            record.message = record.message.replace("\r", "\\r").replace("\n", "\\n")
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, request_id, msg, and exc when present."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialize one record."""
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", None),
            "msg": record.getMessage(),
        }
        for key in ("method", "path", "status", "duration_ms", "remote"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, ensure_ascii=False, default=str)


class _GatewayHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stdout handler installed by setup_logging (marked so a re-setup replaces it)."""


def setup_logging(config: Config, stream: IO[str] | None = None) -> logging.Handler:
    """Send all logs to stdout (or `stream`) as text or JSON lines, at the configured level."""
    handler = _GatewayHandler(stream or sys.stdout)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if config.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _GatewayHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.log_level.upper())
    # Our formatters use neither the caller's file/line nor thread or process fields; not
    # collecting them skips a stack walk and several lookups for every record (the access log
    # writes one per request). These switches are logging's documented optimisations.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    register_secret(config.admin_password)
    register_secret(config.session_secret)
    register_secret(config.metrics_token)
    return handler


@web.middleware
async def request_id_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Accept or generate the request id and expose it to logs for this request."""
    rid = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID] = rid
    request_id_var.set(rid)
    return await handler(request)


async def _add_request_id_header(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Put X-Request-ID on every response, streams and errors included."""
    rid = request.get(REQUEST_ID) or request_id_var.get()
    if rid and REQUEST_ID_HEADER not in response.headers:
        response.headers[REQUEST_ID_HEADER] = rid


def setup_request_ids(app: web.Application) -> None:
    """Install the request id middleware (outermost) and the response header hook."""
    app.middlewares.insert(0, request_id_middleware)
    app.on_response_prepare.append(_add_request_id_header)


class AccessLog(AbstractAccessLogger):
    """One line per request: method, path (no query string: it may hold secrets), status, time."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Log the finished request; health probes only at debug level."""
        level = logging.DEBUG if request.path in ("/healthz", "/readyz") else logging.INFO
        if not self.logger.isEnabledFor(level):
            return
        ms = round(time * 1000, 1)
        self.logger.log(
            level,
            "%s %s %s %.1fms",
            request.method,
            request.path,
            response.status,
            ms,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "duration_ms": ms,
                "remote": request.remote,
                "request_id": request.get(REQUEST_ID) or "-",
            },
        )

    @property
    def enabled(self) -> bool:
        """Skip the work when the access logger is silenced."""
        return self.logger.isEnabledFor(logging.DEBUG) or self.logger.isEnabledFor(logging.INFO)


def shown_url(url: str) -> str:
    """The URL as it may appear in messages and logs: any user:password@ removed."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return "the configured Ollama URL"
    if parsed.user is None and parsed.password is None:
        return url
    return str(parsed.with_user(None)).rstrip("/")
