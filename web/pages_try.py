"""POST /admin/try: send a short prompt through the gateway's own chat translation.

The admin does not paste a key: the handler builds the OpenAI request a client would send,
translates it with the same functions /v1 uses (model overrides, enforce, global defaults,
reasoning mode), streams it from Ollama and translates the answer back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from api.core.clients import client_ip
from api.core.errors import APIError
from api.core.params import reasoning_mode
from api.core.relay import StreamFailed, collect
from api.openai.chat_request import from_chat_request
from api.openai.chat_response import to_chat_completion
from appkeys import CATALOG, REGISTRY, UPSTREAM, USAGE, AppState
from state.options import OptionError
from state.usage import RequestRecord
from web.jsonapi import AdminError, json_error, read_json

log = logging.getLogger(__name__)

MAX_PROMPT = 4000
# A first request may load the model; give it time, but never hang the admin forever.
TRY_TIMEOUT = 300.0
# Its own pseudo key, so try-it rows group apart from keyless refusals in the charts.
TRY_KEY_ID, TRY_KEY_NAME = "admin-try-it", "admin (try it)"


def plan_body(prompt: str) -> dict[str, Any]:
    """The OpenAI chat request the "try it" box stands for."""
    return {"messages": [{"role": "user", "content": prompt}], "stream": False}


def answer_of(completion: dict[str, Any]) -> dict[str, Any]:
    """Content, reasoning and usage out of a chat.completion."""
    message = completion["choices"][0]["message"] if completion.get("choices") else {}
    reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
    return {
        "content": message.get("content") or "",
        "reasoning": reasoning,
        "finish_reason": (completion.get("choices") or [{}])[0].get("finish_reason"),
        "usage": completion.get("usage") or {},
    }


async def _run(app: AppState, native: dict[str, Any]) -> list[dict[str, Any]]:
    """Stream the native request to Ollama and collect every line (api.core.relay)."""
    return await collect(await app[UPSTREAM].open_stream("/api/chat", native))


async def try_model(request: web.Request) -> web.StreamResponse:
    """Run one short prompt; answer {content, reasoning, usage, latency_ms} or an error."""
    app = request.config_dict
    try:
        body = await read_json(request, frozenset({"model", "prompt"}))
    except AdminError as exc:
        return exc.response()
    name, prompt = body.get("model"), body.get("prompt")
    if not isinstance(name, str) or not name.strip():
        return json_error(400, "Choose a model.", "model")
    if not isinstance(prompt, str) or not prompt.strip():
        return json_error(400, "Type a prompt.", "prompt")
    if len(prompt) > MAX_PROMPT:
        return json_error(400, f"Keep the prompt under {MAX_PROMPT} characters.", "prompt")
    registry = app[REGISTRY]
    try:
        info = await app[CATALOG].resolve(name)
    except APIError as exc:
        return json_error(502, exc.message, "model")
    if info is None:
        return json_error(404, f"Ollama has no model named '{name}'.", "model")
    eff = registry.model_settings(info.name)
    if not eff.enabled:
        return json_error(400, f"'{info.name}' is disabled; enable it to try it.", "model")
    defaults = registry.setting("defaults") or {}
    try:
        plan = from_chat_request(
            plan_body(prompt),
            model=info.name,
            capabilities=info.known_capabilities,
            overrides=eff.overrides,
            enforce=eff.enforce,
            defaults=defaults,
        )
    except OptionError as exc:
        return json_error(400, str(exc), "model")
    mode = reasoning_mode(
        eff.reasoning_output, eff.overrides, defaults, registry.setting("reasoning_output")
    )
    started = time.monotonic()
    # The box uses the GPU like any client, so its requests show up in usage too.
    record = RequestRecord(
        key_id=TRY_KEY_ID,
        key_name=TRY_KEY_NAME,
        endpoint="/admin/try",
        model=name,
        ollama_model=info.name,
        client_ip=client_ip(request),
        user_agent=request.headers.get("User-Agent"),
    )
    try:
        lines = await asyncio.wait_for(_run(app, plan.native), TRY_TIMEOUT)
    except APIError as exc:
        answer = json_error(502 if exc.status >= 500 else 400, exc.message, "_form")
    except StreamFailed as exc:
        answer = json_error(502, exc.message, "_form")
    except TimeoutError:
        answer = json_error(504, f"No complete answer within {TRY_TIMEOUT:.0f} seconds.", "_form")
    else:
        # Show reasoning separately whatever the mode, unless the admin hides it.
        shown = "hidden" if mode == "hidden" else "reasoning_content"
        out = answer_of(to_chat_completion(lines, info.public_id, shown))
        out.update(
            model=info.public_id,
            reasoning_mode=mode,
            latency_ms=round((time.monotonic() - started) * 1000, 1),
        )
        record.prompt_tokens = int(out["usage"].get("prompt_tokens") or 0)
        record.completion_tokens = int(out["usage"].get("completion_tokens") or 0)
        answer = web.json_response(out)
    record.status = answer.status
    record.latency_ms = (time.monotonic() - started) * 1000
    app[USAGE].record(record)
    return answer
