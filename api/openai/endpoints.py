"""POST /v1/completions, POST /v1/embeddings, GET /v1/models and GET /v1/models/{id}."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from api.core.catalog import ModelInfo
from api.core.errors import bad_request, model_not_found
from api.core.pipeline import CALL, Call
from api.core.relay import StreamFailed, merged
from api.openai.chat import open_all
from api.openai.chat_response import FINGERPRINT, completion_id, fingerprint, merge_usage
from api.openai.completions import (
    TextChoice,
    embed_request,
    from_completion_request,
    merge_logprobs,
    to_embeddings,
)
from api.openai.sse import DONE, OpenAIFrames, error_frame, frame
from appkeys import CATALOG, STREAMS, UPSTREAM
from state.options import OptionError


def _envelope(
    cid: str,
    created: int,
    label: str,
    choices: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    with_usage: bool,
    system_fingerprint: str = FINGERPRINT,
) -> dict[str, Any]:
    """A text_completion object (or stream chunk)."""
    out: dict[str, Any] = {
        "id": cid,
        "object": "text_completion",
        "created": created,
        "model": label,
        "system_fingerprint": system_fingerprint,
        "choices": choices,
    }
    if with_usage:
        out["usage"] = usage
    return out


class Endpoints:
    """Handlers for the non-chat /v1 endpoints."""

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/completions via /api/generate (prompt lists and n fan out)."""
        call = request[CALL]
        target = await call.start(request)
        body, info, settings = target.body, target.info, target.settings
        try:
            plan = from_completion_request(
                body,
                model=info.name,
                overrides=settings.overrides,
                enforce=settings.enforce,
                defaults=target.defaults,
                capabilities=info.known_capabilities,
            )
        except OptionError as exc:
            raise bad_request(str(exc), exc.param) from None
        call.record.stream = plan.stream
        call.prompt = body.get("prompt")
        call.admit()
        choices = [
            TextChoice(index=i, prompt=p, echo=plan.echo, logprobs=plan.logprobs)
            for i, p in enumerate(plan.prompts)
        ]
        upstreams = await open_all(request, "/api/generate", plan.natives)
        label = body["model"]
        cid, created = completion_id("cmpl"), int(time.time())
        fp = fingerprint(request.config_dict[UPSTREAM].version)
        n_prompts = len(set(plan.prompts))
        if not plan.stream:
            parts: list[list[dict[str, Any] | None]] = [[] for _ in choices]
            try:
                async for i, batch in merged(upstreams):
                    call.first_token()
                    for line in batch:
                        chosen = choices[i].feed(line)
                        if chosen is not None:
                            parts[i].append(chosen["logprobs"])
            except StreamFailed as exc:
                raise exc.api_error() from None
            finally:
                for s in upstreams:
                    s.close()
            usage = self._usage(call, choices, n_prompts)
            return web.json_response(
                _envelope(
                    cid,
                    created,
                    label,
                    [c.choice(merge_logprobs(parts[c.index])) for c in choices],
                    usage,
                    True,
                    fp,
                )
            )
        frames = CompletionFrames(
            call, choices, n_prompts, plan.include_usage, (cid, created, label, fp)
        )
        return await request.config_dict[STREAMS].relay(request, call, upstreams, frames)

    @staticmethod
    def _usage(call: Call, choices: list[TextChoice], n_prompts: int) -> dict[str, Any]:
        """Usage over all choices (each prompt counted once), recorded on the call."""
        usages = [c.usage() for c in choices]
        if n_prompts == 1:
            usage = merge_usage(usages)
        else:
            by_prompt: dict[str, int] = {}
            for c, u in zip(choices, usages, strict=True):
                by_prompt[c.prompt] = max(by_prompt.get(c.prompt, 0), u["prompt_tokens"])
            prompt = sum(by_prompt.values())
            completion = sum(u["completion_tokens"] for u in usages)
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
        call.add_usage(usage["prompt_tokens"], usage["completion_tokens"])
        call.note_metrics(choices[0].final)
        call.log_content(call.prompt, "".join(choices[0].text))
        return usage

    async def embeddings(self, request: web.Request) -> web.Response:
        """POST /v1/embeddings via /api/embed."""
        call = request[CALL]
        target = await call.start(request)
        body, info, settings = target.body, target.info, target.settings
        try:
            native = embed_request(
                body, info.name, settings.overrides, settings.enforce, target.defaults
            )
        except OptionError as exc:
            raise bad_request(str(exc), exc.param) from None
        call.admit()
        data = await request.config_dict[UPSTREAM].request_json("POST", "/api/embed", native)
        result = to_embeddings(data, body["model"], body.get("encoding_format") or "float")
        call.add_usage(result["usage"]["prompt_tokens"], 0)
        call.note_metrics(data)
        call.log_content(body.get("input"), None)
        return web.json_response(result)

    async def list_models(self, request: web.Request) -> web.Response:
        """GET /v1/models: the models this key may use, by display name when set."""
        call = request[CALL]
        call.authenticate()
        models = await request.config_dict[CATALOG].list_models()
        data = [model_object(m) for m in models if call.allowed(m)]
        return web.json_response({"object": "list", "data": data})

    async def get_model(self, request: web.Request) -> web.Response:
        """GET /v1/models/{id}: one model (ids may contain '/')."""
        call = request[CALL]
        call.authenticate()
        name = request.match_info["id"]
        if not name:
            raise model_not_found(name)
        info = await call.resolve_model(name)
        out = model_object(info)
        out["id"] = name
        return web.json_response(out)


def model_object(info: ModelInfo) -> dict[str, Any]:
    """A model in OpenAI's shape plus extension fields Ollama knows."""
    out: dict[str, Any] = {
        "id": info.public_id,
        "object": "model",
        "created": info.created,
        "owned_by": info.name.split("/", 1)[0] if "/" in info.name else "library",
    }
    if info.context_length:
        out["context_length"] = info.context_length
    if info.capabilities:
        out["capabilities"] = list(info.capabilities)
    for key in ("parameter_size", "quantization"):
        if getattr(info, key):
            out[key] = getattr(info, key)
    return out


class CompletionFrames(OpenAIFrames):
    """text_completion chunks for the choices of one completions stream."""

    def __init__(
        self,
        call: Call,
        choices: list[TextChoice],
        n_prompts: int,
        include_usage: bool,
        envelope: tuple[str, int, str, str],
    ) -> None:
        super().__init__()
        self.call, self.choices, self.n_prompts = call, choices, n_prompts
        self.include_usage = include_usage
        self.cid, self.created, self.label, self.fp = envelope

    def _frame(
        self, choices: list[dict[str, Any]], usage: dict[str, Any] | None, with_usage: bool
    ) -> bytes:
        return frame(
            _envelope(self.cid, self.created, self.label, choices, usage, with_usage, self.fp)
        )

    def feed(self, index: int, lines: list[dict[str, Any]]) -> bytes:
        """A chunk per line that carries text (or the finish)."""
        out = []
        for line in lines:
            chosen = self.choices[index].feed(line)
            if chosen is not None:
                out.append(self._frame([chosen], None, self.include_usage))
        self.finished = all(c.final is not None for c in self.choices)
        return b"".join(out)

    def finish(self) -> bytes:
        """The usage chunk (when asked for) and [DONE]."""
        usage = Endpoints._usage(self.call, self.choices, self.n_prompts)
        return (self._frame([], usage, True) if self.include_usage else b"") + DONE

    def fail(self, failure: StreamFailed) -> bytes:
        """Usage so far, then the error frame."""
        Endpoints._usage(self.call, self.choices, self.n_prompts)
        return error_frame(failure)
