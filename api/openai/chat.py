"""POST /v1/chat/completions: the handler that ties translation, upstream and SSE together."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from api.core.errors import APIError, bad_request
from api.core.images import prepare_images
from api.core.params import reasoning_mode
from api.core.pipeline import CALL, Call
from api.core.relay import StreamFailed
from api.core.upstream import UpstreamStream
from api.openai.chat_request import ChatPlan, from_chat_request
from api.openai.chat_response import (
    ChoiceTranslator,
    ChunkEncoder,
    chunk,
    completion,
    completion_id,
    fingerprint,
    merge_usage,
)
from api.openai.sse import DONE, OpenAIFrames, error_frame, frame
from appkeys import CATALOG, REGISTRY, STREAMS, UPSTREAM
from state.options import OptionError


def native_bodies(native: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The n native requests of a fan-out; with a seed, each choice gets seed + i."""
    bodies = [native]
    seed = (native.get("options") or {}).get("seed")
    for i in range(1, n):
        body = dict(native)
        if seed is not None:
            body["options"] = {**native["options"], "seed": seed + i}
        bodies.append(body)
    return bodies


async def open_all(
    request: web.Request, path: str, bodies: list[dict[str, Any]]
) -> list[UpstreamStream]:
    """Open every upstream stream before answering, so failures keep their real status."""
    client = request.config_dict[UPSTREAM]
    try:
        if len(bodies) == 1:  # the common case: no gather, no extra task
            return [await client.open_stream(path, bodies[0])]
        results = await asyncio.gather(
            *(client.open_stream(path, b) for b in bodies), return_exceptions=True
        )
        streams = [r for r in results if isinstance(r, UpstreamStream)]
        for r in results:
            if isinstance(r, BaseException):
                for s in streams:
                    s.close()
                raise r
        return streams
    except APIError as exc:
        if exc.code == "model_not_found":  # removed from Ollama since the list was cached
            request.config_dict[CATALOG].invalidate()
        raise


class ChatHandler:
    """Handles chat completions; `streams` tracks open SSE answers for shutdown."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/chat/completions."""
        call = request[CALL]
        target = await call.start(request)
        body, settings, defaults = target.body, target.settings, target.defaults
        registry = request.config_dict[REGISTRY]
        try:
            plan = from_chat_request(
                body,
                model=target.info.name,
                overrides=settings.overrides,
                enforce=settings.enforce,
                defaults=defaults,
                capabilities=target.info.known_capabilities,
            )
        except OptionError as exc:
            raise bad_request(str(exc), exc.param) from None
        mode = reasoning_mode(
            settings.reasoning_output,
            settings.overrides,
            defaults,
            registry.setting("reasoning_output"),
        )
        call.record.stream = plan.stream
        call.prompt = body.get("messages")
        call.admit()
        if plan.has_images:
            await prepare_images(request.config_dict, plan.native["messages"])

        def translator(i: int) -> ChoiceTranslator:
            return ChoiceTranslator(
                index=i,
                reasoning_mode=mode,
                tool_choice=plan.tool_choice,
                parallel_tool_calls=plan.parallel_tool_calls,
                logprobs=plan.logprobs,
                forced_function=plan.forced_function,
            )

        translators = [translator(i) for i in range(plan.n)]
        label = body["model"]
        if plan.stream:
            bodies = native_bodies(plan.native, plan.n)
            upstreams = await open_all(request, "/api/chat", bodies)
            return await self._stream(request, call, plan, translators, upstreams, label)
        # A non-streaming client gets Ollama's aggregated answer: one JSON object instead of
        # a line per token cuts the gateway's CPU per request by about a fifth (bench/).
        bodies = native_bodies({**plan.native, "stream": False}, plan.n)
        await self._read(request, call, translators, bodies)
        spent: list[ChoiceTranslator] = []
        missing = [t.index for t in translators if not t.calls]
        if plan.tool_choice == "required" and missing:
            # One retry for choices that answered in text although a call was required.
            retries = [translator(i) for i in missing]
            await self._read(request, call, retries, [bodies[i] for i in missing])
            for retry in retries:  # the retry's answer stands, call or not
                spent.append(translators[retry.index])
                translators[retry.index] = retry
        usage = self._account(call, translators, spent)
        return web.json_response(
            completion(
                completion_id(),
                int(time.time()),
                label,
                [t.choice() for t in translators],
                usage,
                fingerprint(request.config_dict[UPSTREAM].version),
            )
        )

    @staticmethod
    async def _read(
        request: web.Request,
        call: Call,
        translators: list[ChoiceTranslator],
        bodies: list[dict[str, Any]],
    ) -> None:
        """Fetch whole (non-streamed) native answers into translators."""
        client = request.config_dict[UPSTREAM]
        try:
            answers = await asyncio.gather(
                *(client.request_json("POST", "/api/chat", b) for b in bodies)
            )
        except APIError as exc:
            if exc.code == "model_not_found":  # removed from Ollama since the list was cached
                request.config_dict[CATALOG].invalidate()
            raise
        for translator, answer in zip(translators, answers, strict=True):
            if "error" in answer:
                raise StreamFailed(f"Ollama error: {answer['error']}").api_error()
            translator.feed(answer)
        call.first_token_from(translators[0].final)

    @staticmethod
    def _account(
        call: Call, translators: list[ChoiceTranslator], spent: list[ChoiceTranslator] | None = None
    ) -> dict[str, Any]:
        """Merge usage over choices (and discarded attempts), count it, note metrics."""
        everyone = translators + (spent or [])
        usage = (
            everyone[0].usage()
            if len(everyone) == 1
            else merge_usage([t.usage() for t in everyone])
        )
        call.add_usage(usage["prompt_tokens"], usage["completion_tokens"])
        call.record.reasoning_tokens = sum(t.reasoning_tokens() for t in everyone)
        call.note_metrics(translators[0].final)
        first = translators[0]
        answer = "".join(first.content)
        if first.calls:
            answer += json.dumps(
                [{"name": c["name"], "arguments": c["arguments"]} for c in first.calls],
                ensure_ascii=False,
            )
        call.log_content(call.prompt, answer)
        return usage

    async def _stream(
        self,
        request: web.Request,
        call: Call,
        plan: ChatPlan,
        translators: list[ChoiceTranslator],
        upstreams: list[UpstreamStream],
        label: str,
    ) -> web.StreamResponse:
        """A streaming answer: one SSE chunk per native piece, then finish, usage, [DONE]."""
        frames = ChatFrames(
            call,
            translators,
            plan.include_usage,
            label,
            fingerprint(request.config_dict[UPSTREAM].version),
        )
        return await request.config_dict[STREAMS].relay(request, call, upstreams, frames)


class ChatFrames(OpenAIFrames):
    """chat.completion.chunk frames for the n choices of one chat stream."""

    def __init__(
        self,
        call: Call,
        translators: list[ChoiceTranslator],
        include_usage: bool,
        label: str,
        fp: str,
    ) -> None:
        super().__init__()
        self.call = call
        self.translators = translators
        self.include_usage = include_usage
        self.cid, self.created, self.label, self.fp = completion_id(), int(time.time()), label, fp
        self.encoder = ChunkEncoder(self.cid, self.created, label, include_usage, fp)

    def feed(self, index: int, lines: list[dict[str, Any]]) -> bytes:
        """One chunk per choice delta of these lines."""
        translator = self.translators[index]
        encode = self.encoder.frame
        data = b"".join([encode(choice) for line in lines for choice in translator.feed(line)])
        if translator.done and all(t.done for t in self.translators):
            self.finished = True
        return data

    def finish(self) -> bytes:
        """The usage chunk (when asked for) and [DONE]."""
        usage = ChatHandler._account(self.call, self.translators)
        if not self.include_usage:
            return DONE
        return frame(chunk(self.cid, self.created, self.label, [], True, usage, self.fp)) + DONE

    def fail(self, failure: StreamFailed) -> bytes:
        """Usage so far, then the error frame."""
        ChatHandler._account(self.call, self.translators)
        return error_frame(failure)
