"""POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages API on the pipeline."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from api.anthropic.request import MessagesPlan, estimate_tokens, from_messages_request
from api.anthropic.response import MessageStream, message_id, message_object
from api.core.answer import AnswerDecoder
from api.core.errors import APIError, bad_request
from api.core.images import prepare_images
from api.core.pipeline import CALL, Call, Target
from api.core.relay import StreamFailed, batches_of
from api.core.streaming import SSE_HEADERS
from api.core.upstream import OllamaClient
from appkeys import CATALOG, STREAMS, UPSTREAM
from state.options import OptionError

log = logging.getLogger(__name__)

# Seconds of model silence before a `ping` event (a first load of a big model can take
# minutes; clients and proxies with idle timeouts then still see traffic).
PING_SECONDS = 10.0


def _plan(target: Target, count_only: bool = False) -> MessagesPlan:
    """Translate the request for the resolved model; a bad field is a 400 naming it."""
    try:
        return from_messages_request(
            target.body,
            model=target.info.name,
            capabilities=target.info.known_capabilities,
            overrides=target.settings.overrides,
            enforce=target.settings.enforce,
            defaults=target.defaults,
            count_only=count_only,
        )
    except OptionError as exc:
        raise bad_request(str(exc), exc.param) from None


def _thinking_shown(plan: MessagesPlan) -> str:
    """show, omit (display "omitted") or drop (the client did not ask for thinking)."""
    if not plan.thinking_requested:
        return "drop"
    return plan.thinking_output


async def _open(request: web.Request, native: dict[str, Any]) -> Any:
    """Open the native stream; a model gone from Ollama refreshes the catalog."""
    try:
        return await request.config_dict[UPSTREAM].open_stream("/api/chat", native)
    except APIError as exc:
        if exc.code == "model_not_found":
            request.config_dict[CATALOG].invalidate()
        raise


def _account(call: Call, plan: MessagesPlan, decoder: AnswerDecoder) -> tuple[int, int]:
    """Record the answer's usage on the call; (input, output) tokens."""
    prompt = decoder.prompt_tokens or estimate_tokens(plan.native)
    completion = decoder.completion_tokens
    call.add_usage(prompt, completion)
    call.record.reasoning_tokens = decoder.reasoning_tokens()
    call.note_metrics(decoder.final)
    answer = decoder.full_text()
    if decoder.calls:
        answer += json.dumps(
            [{"name": c.name, "arguments": c.arguments} for c in decoder.calls],
            ensure_ascii=False,
        )
    call.log_content(call.prompt, answer)
    return prompt, completion


async def messages(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages: a message, streamed or whole."""
    call = request[CALL]
    target = await call.start(request)
    plan = _plan(target)
    call.record.stream = plan.stream
    call.prompt = target.body.get("messages")
    if plan.dropped_tools:
        log.info("left out tools Ollama cannot run: %s", ", ".join(plan.dropped_tools[:20]))
    call.admit()
    await prepare_images(request.config_dict, plan.native["messages"])
    label = target.body["model"]
    decoder = plan.decoder()
    if plan.stream:
        upstream = await _open(request, plan.native)
        frames = MessagesFrames(call, plan, decoder, label)
        return await request.config_dict[STREAMS].relay(request, call, [upstream], frames)
    if plan.stop_sequences:
        # The gateway matches stop sequences itself, so it reads a stream and cuts it.
        await _read_until_done(request, decoder, plan.native)
    else:
        client: OllamaClient = request.config_dict[UPSTREAM]
        answer = await client.request_json("POST", "/api/chat", {**plan.native, "stream": False})
        if "error" in answer:
            raise StreamFailed(f"Ollama error: {answer['error']}").api_error()
        decoder.feed(answer)
        call.first_token_from(decoder.final)
    prompt, completion = _account(call, plan, decoder)
    return web.json_response(
        message_object(
            mid=message_id(),
            model_label=label,
            decoder=decoder,
            input_tokens=prompt,
            output_tokens=completion,
            thinking=_thinking_shown(plan),
        )
    )


async def _read_until_done(
    request: web.Request, decoder: AnswerDecoder, native: dict[str, Any]
) -> None:
    """Feed a native stream to the decoder until it is done (then close the upstream)."""
    stream = await _open(request, native)
    try:
        async for batch in batches_of(stream):
            request[CALL].first_token()
            for line in batch:
                decoder.feed(line)
            if decoder.done:
                return
    except StreamFailed as exc:
        raise exc.api_error() from None
    finally:
        stream.close()


async def count_tokens(request: web.Request) -> web.Response:
    """POST /v1/messages/count_tokens: the prompt's tokens, exact when Ollama can tell."""
    call = request[CALL]
    target = await call.start(request)
    plan = _plan(target, count_only=True)
    call.admit()
    await prepare_images(request.config_dict, plan.native["messages"])
    # Ollama counts a prompt only by evaluating it: one generated token is the cheapest
    # call that reports prompt_eval_count (its prompt cache makes a repeat cheap).
    native = {**plan.native, "stream": False}
    native["options"] = {**native.get("options", {}), "num_predict": 1}
    answer = await request.config_dict[UPSTREAM].request_json("POST", "/api/chat", native)
    decoder = AnswerDecoder()
    decoder.feed(answer)
    exact = decoder.prompt_tokens
    return web.json_response({"input_tokens": exact or estimate_tokens(plan.native)})


class MessagesFrames:
    """Anthropic's SSE events for one streamed message (api.core.streaming's Frames)."""

    headers = SSE_HEADERS
    ping_interval: float | None = PING_SECONDS

    def __init__(self, call: Call, plan: MessagesPlan, decoder: AnswerDecoder, label: str):
        self.call, self.plan, self.decoder = call, plan, decoder
        self.stream = MessageStream(message_id(), label, thinking=_thinking_shown(plan))
        self.finished = False
        self.cut = False
        self.ping_interval = PING_SECONDS

    def start(self) -> bytes:
        """message_start (with the prompt's estimated tokens) and a ping."""
        return self.stream.start(estimate_tokens(self.plan.native))

    def feed(self, index: int, lines: list[dict[str, Any]]) -> bytes:
        """The content-block events of these native lines."""
        decoder = self.decoder
        events = [event for line in lines for event in decoder.feed(line)]
        if decoder.done:
            self.finished = True
            self.cut = decoder.final is None  # a stop sequence ended it before Ollama did
        return self.stream.feed(events)

    def finish(self) -> bytes:
        """message_delta (stop reason, usage) and message_stop."""
        _, completion = _account(self.call, self.plan, self.decoder)
        return self.stream.finish(self.decoder, completion)

    def fail(self, failure: StreamFailed) -> bytes:
        """Usage so far, then an `error` event."""
        _account(self.call, self.plan, self.decoder)
        kind = "overloaded_error" if failure.code == "overloaded" else "api_error"
        return self.stream.fail(failure.message, kind)

    def ping(self) -> bytes:
        """A `ping` event."""
        return self.stream.ping()
