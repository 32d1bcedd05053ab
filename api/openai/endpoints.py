"""POST /v1/completions, POST /v1/embeddings, GET /v1/models and GET /v1/models/{id}."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from api.core.catalog import ModelInfo
from api.core.errors import bad_request, model_not_found
from api.core.pipeline import CALL
from api.core.relay import StreamFailed, merged
from api.core.streaming import SSEStream, frame
from api.openai.chat import open_all
from api.openai.chat_response import FINGERPRINT, completion_id, fingerprint, merge_usage
from api.openai.completions import (
    TextChoice,
    embed_request,
    from_completion_request,
    merge_logprobs,
    to_embeddings,
)
from appkeys import CATALOG, STREAMS, UPSTREAM
from state.options import OptionError


def _envelope(cid: str, created: int, label: str, choices: list[dict[str, Any]],
              usage: dict[str, Any] | None, with_usage: bool,
              system_fingerprint: str = FINGERPRINT) -> dict[str, Any]:
    """A text_completion object (or stream chunk)."""
    out: dict[str, Any] = {"id": cid, "object": "text_completion", "created": created,
                           "model": label, "system_fingerprint": system_fingerprint,
                           "choices": choices}
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
                body, model=info.name, overrides=settings.overrides, enforce=settings.enforce,
                defaults=target.defaults, capabilities=info.known_capabilities)
        except OptionError as exc:
            raise bad_request(str(exc), exc.param) from None
        call.record.stream = plan.stream
        call.prompt = body.get("prompt")
        call.admit()
        choices = [TextChoice(index=i, prompt=p, echo=plan.echo, logprobs=plan.logprobs)
                   for i, p in enumerate(plan.prompts)]
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
            return web.json_response(_envelope(
                cid, created, label, [c.choice(merge_logprobs(parts[c.index])) for c in choices],
                usage, True, fp))
        sse = SSEStream(request, call.headers)
        sse.upstreams = upstreams
        request.config_dict[STREAMS].add(sse)
        finished = False
        try:
            await sse.open()
            try:
                async for i, batch in merged(upstreams):
                    frames = []
                    for line in batch:
                        chosen = choices[i].feed(line)
                        if chosen is not None:
                            frames.append(frame(_envelope(cid, created, label, [chosen], None,
                                                          plan.include_usage, fp)))
                    if frames:
                        call.first_token()
                    if not finished and all(c.final is not None for c in choices):
                        finished = True  # usage and [DONE] go out with the last frames
                        usage = self._usage(call, choices, n_prompts)
                        if plan.include_usage:
                            frames.append(frame(_envelope(cid, created, label, [], usage,
                                                          True, fp)))
                        await sse.done(frames)
                    else:
                        await sse.send_frames(frames)
            except StreamFailed as exc:
                failure = exc if not sse.shutting_down else StreamFailed(
                    "The gateway is shutting down; this stream was ended.", "server_shutdown")
                call.record.error_code = failure.code
                self._usage(call, choices, n_prompts)
                await sse.send_error(failure.message, failure.code)
                return sse.response
        except ConnectionError:
            call.record.cancelled = True
            call.record.status = 499
            call.record.error_code = "client_closed"
        finally:
            sse.abort_upstreams()
            request.config_dict[STREAMS].discard(sse)
        return sse.response

    @staticmethod
    def _usage(call: Any, choices: list[TextChoice], n_prompts: int) -> dict[str, Any]:
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
            usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                     "total_tokens": prompt + completion}
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
            native = embed_request(body, info.name, settings.overrides, settings.enforce,
                                   target.defaults)
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
    out: dict[str, Any] = {"id": info.public_id, "object": "model", "created": info.created,
                           "owned_by": info.name.split("/", 1)[0] if "/" in info.name
                           else "library"}
    if info.context_length:
        out["context_length"] = info.context_length
    if info.capabilities:
        out["capabilities"] = list(info.capabilities)
    for key in ("parameter_size", "quantization"):
        if getattr(info, key):
            out[key] = getattr(info, key)
    return out
