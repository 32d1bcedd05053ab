"""What every API request goes through, whatever its protocol.

The steps, in order: authenticate -> resolve the model (display names, allowlist) -> apply
overrides and `enforce` (the adapter's translation, through api.core.native) -> admit
(limits) -> call upstream -> record usage. `pipeline_middleware(render)` wraps each handler
of an API sub-app: it creates the `Call` (reachable as `request[CALL]`), counts the request
in flight, turns every failure into the surface's error shape with `render`, and records
exactly one `RequestRecord` per request (refusals, errors and client disconnects included).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from api.core.catalog import ModelInfo
from api.core.clients import client_ip
from api.core.errors import APIError, model_not_found, read_json_object
from appkeys import CATALOG, LIMITER, METRICS, REGISTRY, USAGE
from logs import REQUEST_ID, accept_request_id, request_id_var
from state.limits import Admission, RateLimited
from state.registry import ApiKey, AuthError, EffectiveModel
from state.usage import RequestRecord
from state.usage_metrics import endpoint_label

log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


@dataclass(frozen=True, slots=True)
class Target:
    """A POST's body and the model it resolved to, with that model's effective settings."""

    body: dict[str, Any]
    info: ModelInfo
    settings: EffectiveModel
    defaults: Mapping[str, Any]


class Call:
    """The state of one API request: key, admission, timing and its usage record."""

    def __init__(self, request: web.Request, endpoint: str, surface: str = "openai") -> None:
        # The request keeps this call (request[CALL]); holding the request here too would make
        # a reference cycle, so every request's objects would wait for the cyclic GC instead
        # of being freed when it ends. Only what the steps below read is kept.
        self.request_headers = request.headers
        self.app = request.config_dict
        self.surface = surface
        self.started = time.monotonic()
        rid = request.get(REQUEST_ID) or accept_request_id(request.headers.get("X-Request-ID"))
        request_id_var.set(rid)
        self.request_id = rid
        self.record = RequestRecord(
            endpoint=endpoint,
            client_ip=client_ip(request),
            user_agent=clean_text(request.headers.get("User-Agent", "")) or None,
            request_id=rid,
        )
        self.key: ApiKey | None = None
        self.admission: Admission | None = None
        self.headers: dict[str, str] = {"X-Request-ID": rid}
        self.prompt: Any = None  # what the client sent, for content logging
        self._recorded = False

    # -- steps the handlers call, in order -----------------------------------------------
    def authenticate(self) -> ApiKey:
        """Check the key; 401 invalid_api_key saying why (never echoing the key).

        Every surface takes `Authorization: Bearer`; Anthropic's SDK sends `x-api-key` and
        Azure-style clients `api-key`.
        """
        header = self.request_headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        token = secret.strip() if scheme.lower() == "bearer" else ""
        if not token:
            token = (
                self.request_headers.get("x-api-key", "") or self.request_headers.get("api-key", "")
            ).strip()
        registry = self.app[REGISTRY]
        if token and clean_text(token) != token:
            # aiohttp keeps undecodable header bytes as lone surrogates; no key looks like that.
            raise APIError(
                401,
                "Invalid API key: no such key.",
                code="invalid_api_key",
                headers={"WWW-Authenticate": 'Bearer realm="ollama2openai"'},
            )
        try:
            key = registry.authenticate(token or None)
        except AuthError as exc:
            raise APIError(
                401,
                exc.message,
                code="invalid_api_key",
                headers={"WWW-Authenticate": 'Bearer realm="ollama2openai"'},
            ) from None
        self.key = key
        self.record.key_id = key.id
        self.record.key_name = key.name
        touch = getattr(registry, "touch", None)
        if callable(touch):
            touch(key)
        return key

    async def resolve_model(self, name: Any) -> ModelInfo:
        """Resolve and authorise the requested model; 404 model_not_found when not allowed."""
        if not isinstance(name, str) or not name.strip():
            raise APIError(
                400,
                "'model' is required and must be a string.",
                param="model",
                code="missing_required_parameter" if name is None else "invalid_type",
            )
        self.record.model = clean_text(name)
        info = await self.app[CATALOG].resolve(name)
        if info is None:
            raise model_not_found(name)
        self.record.ollama_model = info.name
        if not info.enabled or self.key is None or not self.key.allows(info.aliases):
            raise model_not_found(name)
        return info

    async def start(self, request: web.Request) -> Target:
        """The first steps of every POST: key, JSON body, model, its settings and defaults."""
        self.authenticate()
        body = await read_json_object(request)
        info = await self.resolve_model(body.get("model"))
        registry = self.app[REGISTRY]
        return Target(
            body, info, registry.model_settings(info.name), registry.setting("defaults") or {}
        )

    def allowed(self, info: ModelInfo) -> bool:
        """Whether this call's key may see a model (for listings)."""
        return info.enabled and self.key is not None and self.key.allows(info.aliases)

    def admit(self) -> None:
        """Take a rate-limit slot; 429 rate_limit_exceeded with Retry-After when refused."""
        assert self.key is not None
        try:
            self.admission = self.app[LIMITER].admit(self.key)
        except RateLimited as exc:
            retry = max(1, int(exc.retry_after + 0.999))
            raise APIError(
                429,
                exc.message,
                code="rate_limit_exceeded",
                headers={**exc.headers, "Retry-After": str(retry)},
            ) from None
        self.headers.update(self.admission.headers)

    def add_usage(self, prompt: int, completion: int) -> None:
        """Count tokens on the record and toward the key's tokens-per-minute."""
        self.record.prompt_tokens += prompt
        self.record.completion_tokens += completion
        if self.admission is not None and prompt + completion:
            self.admission.add_tokens(prompt + completion)

    def log_content(self, prompt: Any, response: Any) -> None:
        """Keep prompt and response text on the record, only when content logging is on."""
        if not self.app[REGISTRY].setting("content_logging"):
            return
        self.record.prompt_text = clean_text(
            prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)
        )
        self.record.response_text = (
            None
            if response is None
            else clean_text(
                response if isinstance(response, str) else json.dumps(response, ensure_ascii=False)
            )
        )

    def first_token(self) -> None:
        """Note the time to first token (once)."""
        if self.record.ttft_ms is None:
            self.record.ttft_ms = (time.monotonic() - self.started) * 1000

    def first_token_from(self, final: dict[str, Any] | None) -> None:
        """Time to first token of a non-streamed answer: elapsed time less generation time."""
        duration = (final or {}).get("eval_duration")
        if self.record.ttft_ms is None and isinstance(duration, int | float) and duration >= 0:
            elapsed = (time.monotonic() - self.started) * 1000
            self.record.ttft_ms = max(0.0, elapsed - duration / 1e6)

    def note_metrics(self, final: dict[str, Any] | None) -> None:
        """Load time and generation speed from a native final line."""
        if not final:
            return
        load = final.get("load_duration")
        if isinstance(load, int | float) and load > 0:
            self.record.load_ms = max(self.record.load_ms or 0.0, load / 1e6)
        count, duration = final.get("eval_count"), final.get("eval_duration")
        if isinstance(count, int) and isinstance(duration, int | float) and duration > 0:
            self.record.tokens_per_s = count / (duration / 1e9)

    def finish(self, status: int, error_code: str | None = None, cancelled: bool = False) -> None:
        """Release the admission and record the request (exactly once)."""
        if self._recorded:
            return
        self._recorded = True
        if self.admission is not None:
            self.admission.release()
        self.record.status = status
        self.record.error_code = error_code
        self.record.cancelled = self.record.cancelled or cancelled
        self.record.latency_ms = (time.monotonic() - self.started) * 1000
        try:
            self.app[USAGE].record(self.record)
        except Exception:  # usage must never break a request
            log.exception("usage record failed")


CALL: web.RequestKey[Call] = web.RequestKey("call")
ErrorRenderer = Callable[[APIError], web.StreamResponse]


def clean_text(text: str) -> str:
    """Client text made storable: lone surrogates (valid in JSON, not in UTF-8) replaced."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _endpoint(request: web.Request) -> str:
    """The endpoint label: the route's path template, or the raw path."""
    info = request.match_info.route.resource
    canonical = info.canonical if info is not None else request.path
    return canonical.replace("/{id:.*}", "/{id}")


def _http_error(request: web.Request, exc: web.HTTPException) -> APIError:
    """An aiohttp HTTP exception (404 route, 405, 413, ...) in OpenAI's shape."""
    if exc.status == 413:
        message = f"Request body too large: the limit is {request.client_max_size} bytes."
    elif exc.status == 404:
        message = f"Unknown API route: {request.method} {request.path}."
    elif exc.status == 405:
        message = f"Method {request.method} is not allowed on {request.path}."
    else:
        message = exc.text or exc.reason
    return APIError(exc.status, message, code=_HTTP_CODES.get(exc.status, "http_error"))


def pipeline_middleware(surface: str, render: ErrorRenderer) -> Middleware:
    """The middleware of one API surface: a Call per request, errors in `render`'s shape."""

    @web.middleware
    async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
        call = Call(request, clean_text(_endpoint(request)), surface)
        request[CALL] = call
        gauge = call.app[METRICS].in_flight_for(endpoint_label(call.record.endpoint))
        gauge.inc()
        status: int = 500
        code: str | None = "internal_error"
        cancelled = False
        try:
            response = await handler(request)
            status, code = response.status, None
            if response.prepared:  # a stream: the handler already sent everything
                status = call.record.status if call.record.status != 200 else response.status
                code = call.record.error_code
            else:
                for name, value in call.headers.items():
                    response.headers.setdefault(name, value)
            return response
        except APIError as exc:
            status, code = exc.status, exc.code
            return _error_response(render, exc, call)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            err = _http_error(request, exc)
            status, code = err.status, err.code
            return _error_response(render, err, call)
        except json.JSONDecodeError as exc:
            err = APIError(400, f"Request body is not valid JSON: {exc.msg}.", code="invalid_json")
            status, code = 400, "invalid_json"
            return _error_response(render, err, call)
        except (asyncio.CancelledError, ConnectionResetError):
            status, code, cancelled = 499, "client_closed", True
            raise
        except Exception:
            # The traceback goes to the log; the client gets a stable shape without internals.
            log.exception("unhandled error on %s %s", request.method, request.path)
            return _error_response(
                render,
                APIError(
                    500, "Internal gateway error; see the gateway log.", code="internal_error"
                ),
                call,
            )
        finally:
            gauge.dec()
            call.finish(status, code, cancelled)

    return pipeline


def _error_response(render: ErrorRenderer, err: APIError, call: Call) -> web.StreamResponse:
    """The error response, with the request id and any rate-limit headers."""
    response = render(err)
    for name, value in call.headers.items():
        response.headers.setdefault(name, value)
    return response
