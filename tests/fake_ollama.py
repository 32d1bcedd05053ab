"""A fake Ollama server: a real aiohttp app that follows the wire doc and records what it got.

Usage (see the `fake_ollama` fixture in conftest.py)::

    fake = FakeOllama()                 # default models, echo replies
    server = await aiohttp_server(fake.app)
    fake.url                            # "http://127.0.0.1:PORT" once started

What it records: every request as a `Recorded(method, path, body)` in `fake.requests`;
`fake.bodies("/api/chat")` lists the JSON bodies sent to one path, `fake.last("/api/chat")`
the newest one. `fake.disconnects` counts streams whose client went away before the end, and
`await fake.wait_disconnect()` waits for the next one.

Default replies (no script): chat answers ``Echo: <last user text>`` in word-sized NDJSON lines;
with `think` on a thinking model it first streams ``Thinking about: <text>`` as thinking;
generate answers ``Echo: <prompt>`` (plus logprobs when asked); embed returns deterministic
L2-normalised vectors (8 dims, or `dimensions`). Like real Ollama, it answers 404 for unknown
models, 400 for think/tools on a model without the capability or bad base64 images, and 500
for a wrongly typed option. `options.num_predict` caps the reply (done_reason "length").

Scripts: `fake.push("chat", Script(...))` queues a one-shot reply for /api/chat (FIFO; also
"generate" and "embed"); `fake.always("chat", Script(...))` sets a reply used whenever the
queue is empty. A Script streams `lines` (partial native lines: model, created_at, role and
done:false are filled in), then a done line with metrics unless told otherwise. See `Script`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

DEFAULT_METRICS = {
    "total_duration": 512_345_678,
    "load_duration": 20_123_456,
    "prompt_eval_duration": 81_234_567,
    "eval_duration": 61_234_567,
}


@dataclass
class FakeModel:
    """One installed model as /api/tags and /api/show describe it."""

    name: str
    capabilities: list[str] = field(default_factory=lambda: ["completion"])
    context_length: int = 8192
    family: str = "llama"
    parameter_size: str = "3.2B"
    quantization: str = "Q4_K_M"
    size: int = 2_019_393_189
    digest: str = ""
    modified_at: str = "2026-08-01T09:12:33.1234567+02:00"
    show_status: int = 200  # another status makes /api/show fail for this model

    def __post_init__(self) -> None:
        if not self.digest:
            self.digest = hashlib.sha256(self.name.encode()).hexdigest()


def default_models() -> list[FakeModel]:
    """The models every fake starts with (stable: other tests rely on them)."""
    return [
        FakeModel("llama3.2:latest", ["completion", "tools"], 131072),
        FakeModel(
            "qwen3:8b",
            ["completion", "tools", "thinking"],
            40960,
            family="qwen3",
            parameter_size="8.2B",
        ),
        FakeModel("llava:7b", ["completion", "vision"], 4096, family="llava", parameter_size="7B"),
        FakeModel(
            "all-minilm:latest",
            ["embedding"],
            512,
            family="bert",
            parameter_size="23M",
            quantization="F16",
        ),
        FakeModel("hf.co/org/coder:Q4_K_M", ["completion", "insert"], 16384, family="qwen2"),
    ]


@dataclass
class Script:
    """A scripted reply.

    lines: partial native lines, each e.g. {"message": {"content": "Hi"}} or, for generate,
      {"response": "Hi"}; a line {"error": "..."} is written verbatim and the connection then
      closes (Ollama's mid-stream error). A line with "done": True is used as the final line.
    done: append a final done line when `lines` has none (False: stream ends without one).
    done_reason: on the appended done line (None: left out, as old runners do).
    metrics: metrics for the appended done line (defaults: DEFAULT_METRICS plus counts);
      {} leaves every metric out.
    drop: after the lines, cut the TCP connection without ending the chunked body (no done
      line is appended then, unless `lines` has one).
    delay: seconds to sleep before each line (slow token stream).
    status: a non-200 status answered instead of a stream, with body {"error": error}.
    headers: extra response headers (e.g. {"Retry-After": "7"} with status 503).
    raw_body: a raw body to answer instead of JSON (for garbage tests).
    """

    lines: list[dict[str, Any]] = field(default_factory=list)
    done: bool = True
    done_reason: str | None = "stop"
    metrics: dict[str, int] | None = None
    drop: bool = False
    delay: float = 0.0
    status: int = 200
    error: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: bytes | None = None


def text_script(*pieces: str, thinking: tuple[str, ...] = (), **kw: Any) -> Script:
    """A chat script streaming thinking pieces, then content pieces."""
    lines = [{"message": {"content": "", "thinking": t}} for t in thinking]
    lines += [{"message": {"content": p}} for p in pieces]
    return Script(lines=lines, **kw)


def tool_call(
    name: str, arguments: dict[str, Any], id: str | None = "call_k3j9x0qa", index: int = 0
) -> dict[str, Any]:
    """A native tool call (id None: left out, as servers before v0.12.10 do)."""
    call: dict[str, Any] = {"function": {"index": index, "name": name, "arguments": arguments}}
    if id is not None:
        call["id"] = id
    return call


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]


def _now() -> str:
    """RFC 3339 UTC timestamp as Ollama writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _words(text: str) -> list[str]:
    """Split text into word pieces that join back to the text."""
    parts = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(parts)] if text else []


def fake_vector(text: str, dims: int) -> list[float]:
    """A deterministic L2-normalised vector for a text."""
    seed = hashlib.sha256(text.encode()).digest()
    raw = [(seed[i % len(seed)] - 127.5) / 127.5 + 0.001 * i for i in range(dims)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


_INT_OPTIONS = {
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "num_thread",
    "draft_num_predict",
    "num_keep",
    "seed",
    "num_predict",
    "top_k",
    "repeat_last_n",
}
_FLOAT_OPTIONS = {
    "top_p",
    "min_p",
    "typical_p",
    "temperature",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
}


class FakeOllama:
    """The fake server; `app` is the aiohttp application to start."""

    def __init__(self, models: list[FakeModel] | None = None) -> None:
        self.models: list[FakeModel] = models if models is not None else default_models()
        self.requests: list[Recorded] = []
        self.version = "0.33.0"
        self.url = ""
        self.disconnects = 0
        self._disconnected = asyncio.Event()
        self._queues: dict[str, deque[Script]] = {
            "chat": deque(),
            "generate": deque(),
            "embed": deque(),
        }
        self._always: dict[str, Script | None] = {"chat": None, "generate": None, "embed": None}
        self.app = web.Application()
        self.app.router.add_route("*", "/{path:.*}", self._dispatch)
        self.app.on_startup.append(self._on_startup)

    # -- scripting and inspection -------------------------------------------------------
    def push(self, kind: str, *scripts: Script) -> None:
        """Queue one-shot scripts for "chat", "generate" or "embed" (used in order)."""
        self._queues[kind].extend(scripts)

    def always(self, kind: str, script: Script | None) -> None:
        """Use this script whenever no one-shot script is queued (None: default replies)."""
        self._always[kind] = script

    def bodies(self, path: str) -> list[Any]:
        """The JSON bodies received on one path, oldest first."""
        return [r.body for r in self.requests if r.path == path]

    def last(self, path: str) -> Any:
        """The newest body received on one path."""
        found = self.bodies(path)
        assert found, f"the fake Ollama received no request on {path}"
        return found[-1]

    async def wait_disconnect(self, timeout: float = 5.0) -> None:
        """Wait until a streaming client has gone away."""
        await asyncio.wait_for(self._disconnected.wait(), timeout)

    def model(self, name: str) -> FakeModel | None:
        """Find a model by name, accepting a missing :latest like Ollama does."""
        name = name.strip()
        for m in self.models:
            if name in (m.name, m.name.removesuffix(":latest")):
                return m
        return None

    async def _on_startup(self, app: web.Application) -> None:
        self._disconnected = asyncio.Event()

    # -- routing ------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body: Any = None
        raw = await request.read()
        if raw:
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                body = raw.decode("utf-8", "replace")
        self.requests.append(Recorded(request.method, request.path, body, dict(request.headers)))
        routes = {
            ("GET", "/"): self._root,
            ("HEAD", "/"): self._root,
            ("GET", "/api/version"): self._version,
            ("GET", "/api/tags"): self._tags,
            ("GET", "/api/ps"): self._ps,
            ("POST", "/api/show"): self._show,
            ("POST", "/api/chat"): self._chat,
            ("POST", "/api/generate"): self._generate,
            ("POST", "/api/embed"): self._embed,
        }
        handler = routes.get((request.method, request.path))
        if handler is None:
            return web.Response(status=404, text="404 page not found")
        if request.method == "POST" and not isinstance(body, dict):
            return _error(400, "missing request body" if body is None else "invalid JSON")
        return await handler(request, body)

    async def _root(self, request: web.Request, body: Any) -> web.StreamResponse:
        return web.Response(text="Ollama is running")

    async def _version(self, request: web.Request, body: Any) -> web.StreamResponse:
        return web.json_response({"version": self.version})

    def _details(self, m: FakeModel) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": m.family,
            "families": [m.family],
            "parameter_size": m.parameter_size,
            "quantization_level": m.quantization,
        }

    async def _tags(self, request: web.Request, body: Any) -> web.StreamResponse:
        models = [
            {
                "name": m.name,
                "model": m.name,
                "modified_at": m.modified_at,
                "size": m.size,
                "digest": m.digest,
                "details": self._details(m),
                "capabilities": list(m.capabilities),
            }
            for m in self.models
        ]
        return web.json_response({"models": models})

    async def _ps(self, request: web.Request, body: Any) -> web.StreamResponse:
        models = [
            {
                "name": m.name,
                "model": m.name,
                "size": m.size,
                "digest": m.digest,
                "details": self._details(m),
                "expires_at": "2026-08-20T10:05:02.5Z",
                "size_vram": m.size,
                "context_length": min(m.context_length, 4096),
            }
            for m in self.models[:1]
        ]
        return web.json_response({"models": models})

    async def _show(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        name = body.get("model") or body.get("name") or ""
        m = self.model(str(name))
        if m is None:
            return _error(404, f"model '{name}' not found")
        if m.show_status != 200:
            return _error(m.show_status, "scripted /api/show failure")
        return web.json_response(
            {
                "license": "MIT",
                "modelfile": "# Modelfile\nFROM x\n",
                "parameters": (
                    "temperature                    0.6\ntop_k                          20"
                ),
                "template": "{{ .Prompt }}",
                "details": self._details(m),
                "model_info": {
                    "general.architecture": m.family,
                    "general.parameter_count": 1000,
                    f"{m.family}.context_length": m.context_length,
                    f"{m.family}.embedding_length": 8,
                },
                "tensors": [],
                "capabilities": list(m.capabilities),
                "modified_at": m.modified_at,
            }
        )

    # -- inference ----------------------------------------------------------------------
    def _script(self, kind: str) -> Script | None:
        queue = self._queues[kind]
        return queue.popleft() if queue else self._always[kind]

    def _check_common(
        self, body: dict[str, Any], kind: str
    ) -> tuple[FakeModel | None, web.Response | None]:
        """Ollama's own checks: model, options types, think and tools capabilities."""
        name = body.get("model")
        if not isinstance(name, str) or not name:
            return None, _error(400, "model is required")
        m = self.model(name)
        if m is None:
            return None, _error(404, f"model '{name}' not found")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            return m, _error(400, "json: cannot unmarshal options")
        for key, value in options.items():
            bad = None
            if key in _INT_OPTIONS and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                bad = "integer"
            elif key in _FLOAT_OPTIONS and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                bad = "float"
            elif key == "stop" and not isinstance(value, list):
                bad = "array"
            if bad:
                return m, _error(500, f'option "{key}" must be of type {bad}')
        think = body.get("think")
        if think not in (None, False, True, "low", "medium", "high", "max"):
            return m, _error(400, f"invalid think value: {think!r}")
        if think not in (None, False) and "thinking" not in m.capabilities:
            return m, _error(400, f'"{name}" does not support thinking')
        if body.get("tools") and "tools" not in m.capabilities:
            return m, _error(400, f"{name} does not support tools")
        if kind == "chat" and "completion" not in m.capabilities:
            return m, _error(400, f'"{name}" does not support chat')
        return m, None

    async def _chat(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        m, err = self._check_common(body, "chat")
        if err is not None:
            return err
        assert m is not None
        messages = body.get("messages") or []
        if not isinstance(messages, list):
            return _error(400, "json: cannot unmarshal messages")
        prompt_words = 0
        for msg in messages:
            if not isinstance(msg, dict) or not isinstance(msg.get("content", ""), str | None):
                return _error(
                    400,
                    "json: cannot unmarshal array into Go struct field "
                    "Message.messages.content of type string",
                )
            for img in msg.get("images") or []:
                try:
                    base64.b64decode(img, validate=True)
                except (binascii.Error, ValueError, TypeError):
                    return _error(400, "illegal base64 data at input byte 4")
            prompt_words += len((msg.get("content") or "").split())
        script = self._script("chat")
        if script is None:
            script = self._default_chat(body, m)
        return await self._play(request, body, script, "chat", prompt_words)

    def _default_chat(self, body: dict[str, Any], m: FakeModel) -> Script:
        """Echo the last user message, with thinking when think is on for a thinking model."""
        messages = body.get("messages") or []
        if not messages:
            return Script(lines=[], done_reason="load", metrics={})
        last = next(
            (x.get("content") or "" for x in reversed(messages) if x.get("role") == "user"), ""
        )
        text = f"Echo: {last}"
        fmt = body.get("format")
        if fmt:
            text = json.dumps({"echo": last})
        think = body.get("think")
        thinking_on = "thinking" in m.capabilities and think is not False
        thoughts = _words(f"Thinking about: {last}") if thinking_on else []
        return self._limited(
            body,
            [{"message": {"content": "", "thinking": t}} for t in thoughts]
            + [{"message": {"content": p}} for p in _words(text)],
            "message",
        )

    def _limited(self, body: dict[str, Any], lines: list[dict[str, Any]], key: str) -> Script:
        """Cut the lines at options.num_predict (one line = one token), like a length stop."""
        limit = (body.get("options") or {}).get("num_predict")
        if (
            isinstance(limit, int | float)
            and not isinstance(limit, bool)
            and 0 <= limit < len(lines)
        ):
            return Script(lines=lines[: int(limit)], done_reason="length")
        return Script(lines=lines)

    async def _generate(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        m, err = self._check_common(body, "generate")
        if err is not None:
            return err
        assert m is not None
        prompt = body.get("prompt") or ""
        if not isinstance(prompt, str):
            return _error(400, "json: cannot unmarshal prompt")
        if body.get("suffix") and "insert" not in m.capabilities:
            return _error(400, f"{body['model']} does not support insert")
        script = self._script("generate")
        if script is None:
            if not prompt:
                script = Script(lines=[], done_reason="load", metrics={})
            else:
                text = f"Echo: {prompt}"
                if body.get("suffix"):
                    text += f" [before {body['suffix']}]"
                lines: list[dict[str, Any]] = []
                for piece in _words(text):
                    line: dict[str, Any] = {"response": piece}
                    if body.get("logprobs"):
                        line["logprobs"] = [_logprob(piece, body.get("top_logprobs") or 0)]
                    lines.append(line)
                script = self._limited(body, lines, "response")
        return await self._play(request, body, script, "generate", len(prompt.split()))

    async def _embed(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        name = body.get("model")
        m = self.model(str(name)) if isinstance(name, str) else None
        if m is None:
            return _error(404, f"model '{name}' not found")
        script = self._script("embed")
        if script is not None:
            if script.status != 200:
                return _error(script.status, script.error, script.headers)
            return web.json_response(script.lines[0] if script.lines else {})
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            return _error(400, "invalid input type")
        dims = body.get("dimensions") or 8
        if not isinstance(dims, int) or not 0 < dims <= 4096:
            return _error(400, f"invalid dimensions: {dims!r}")
        vectors = [fake_vector(text, int(dims)) for text in inputs]
        words = sum(len(t.split()) for t in inputs)
        return web.json_response(
            {
                "model": name,
                "embeddings": vectors,
                "total_duration": 14_143_917,
                "load_duration": 1_019_500,
                "prompt_eval_count": words,
            }
        )

    async def _play(
        self,
        request: web.Request,
        body: dict[str, Any],
        script: Script,
        kind: str,
        prompt_words: int,
    ) -> web.StreamResponse:
        """Answer with a script: an error status, one aggregated object, or an NDJSON stream."""
        if script.raw_body is not None:
            return web.Response(status=script.status, body=script.raw_body, headers=script.headers)
        if script.status != 200:
            return _error(script.status, script.error, script.headers)
        lines = self._full_lines(body, script, kind, prompt_words)
        if body.get("stream") is False:
            # Not streamed, Ollama answers once: a failure while generating is an error
            # status, a dropped connection is a connection closed before any answer.
            if script.drop and not any(ln.get("done") for ln in lines):
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=500)
            failed = [ln["error"] for ln in lines if "error" in ln]
            if failed:
                return _error(500, failed[0], script.headers)
            if script.delay:
                await self._sleep_watching(request, script.delay * len(lines))
            return web.json_response(_aggregate(lines, kind), headers=script.headers)
        resp = web.StreamResponse(
            headers={"Content-Type": "application/x-ndjson", **script.headers}
        )
        await resp.prepare(request)
        finished = False
        try:
            for line in lines:
                if script.delay:
                    await self._sleep_watching(request, script.delay)
                await resp.write(json.dumps(line).encode() + b"\n")
                if "error" in line:
                    break
            if request.transport is None or request.transport.is_closing():
                raise ConnectionResetError
            finished = True
        except ConnectionError:
            return resp
        finally:
            # aiohttp cancels the handler when the client goes away; count that too.
            if not finished:
                self._note_disconnect()
        if script.drop:
            # Close after flushing, without the chunked terminator: a broken body.
            if request.transport is not None:
                request.transport.close()
            return resp
        await resp.write_eof()
        return resp

    async def _sleep_watching(self, request: web.Request, delay: float) -> None:
        """Sleep, noticing a client that goes away meanwhile."""
        end = asyncio.get_running_loop().time() + delay
        while True:
            transport = request.transport
            if transport is None or transport.is_closing():
                raise ConnectionResetError
            left = end - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.02))

    def _note_disconnect(self) -> None:
        self.disconnects += 1
        self._disconnected.set()

    def _full_lines(
        self, body: dict[str, Any], script: Script, kind: str, prompt_words: int
    ) -> list[dict[str, Any]]:
        """Fill in the fields Ollama always writes and append the done line."""
        model = body.get("model")
        out: list[dict[str, Any]] = []
        for partial in script.lines:
            if "error" in partial:
                out.append(dict(partial))
                continue
            out.append(self._line(model, partial, kind))
        has_done = any(ln.get("done") for ln in out)
        if (
            script.done
            and not script.drop
            and not has_done
            and not any("error" in ln for ln in out)
        ):
            final: dict[str, Any] = {"done": True}
            if script.done_reason is not None:
                final["done_reason"] = script.done_reason
            if script.metrics is None:
                final.update(DEFAULT_METRICS)
                final["prompt_eval_count"] = prompt_words
                final["eval_count"] = len(script.lines)
            else:
                final.update(script.metrics)
            done_line = self._line(model, {}, kind)
            done_line.update(final)
            out.append(done_line)
        return out

    @staticmethod
    def _line(model: Any, partial: dict[str, Any], kind: str) -> dict[str, Any]:
        line: dict[str, Any] = {"model": model, "created_at": _now()}
        if kind == "chat":
            message = {"role": "assistant", "content": ""}
            message.update(partial.get("message") or {})
            line["message"] = message
        else:
            line["response"] = partial.get("response", "")
            if "thinking" in partial:
                line["thinking"] = partial["thinking"]
        line["done"] = False
        for key, value in partial.items():
            if key not in ("message", "response", "thinking"):
                line[key] = value
        return line


def _logprob(token: str, top: int) -> dict[str, Any]:
    """A native logprob entry for one token."""
    data = list(token.encode())
    entry: dict[str, Any] = {"token": token, "logprob": -0.25, "bytes": data}
    if top:
        entry["top_logprobs"] = [{"token": token, "logprob": -0.25, "bytes": data}] + [
            {"token": f"alt{i}", "logprob": -2.0 - i, "bytes": list(f"alt{i}".encode())}
            for i in range(1, top)
        ]
    return entry


def _aggregate(lines: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """What Ollama returns with stream:false: texts joined, last line's metadata."""
    result = dict(lines[-1])
    if kind == "chat":
        msg = {
            "role": "assistant",
            "content": "".join(ln["message"].get("content", "") for ln in lines),
        }
        thinking = "".join(ln["message"].get("thinking", "") for ln in lines)
        if thinking:
            msg["thinking"] = thinking
        calls = [c for ln in lines for c in ln["message"].get("tool_calls", [])]
        if calls:
            msg["tool_calls"] = calls
        result["message"] = msg
    else:
        result["response"] = "".join(ln.get("response", "") for ln in lines)
        thinking = "".join(ln.get("thinking", "") for ln in lines)
        if thinking:
            result["thinking"] = thinking
    logprobs = [lp for ln in lines for lp in ln.get("logprobs", [])]
    if logprobs:
        result["logprobs"] = logprobs
    return result


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """Ollama's error shape."""
    return web.json_response({"error": message}, status=status, headers=headers or {})
