"""A fast fake Ollama for the benchmark, and a bare aiohttp pass-through used as a reference.

    python bench/fake_upstream.py --port 11500 [--tokens 10]
    python bench/fake_upstream.py --port 11501 --passthrough http://127.0.0.1:11500

The fake answers /api/chat (NDJSON stream or one JSON object), /api/generate, /api/tags,
/api/show, /api/version and / with pre-encoded bytes, doing as little work per request as it can,
so that the benchmark measures the gateway and not the upstream. The pass-through forwards any
request to the target over one ClientSession and copies the response back chunk by chunk: the
floor cost of one extra HTTP hop in this stack, with no features.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

MODEL = "bench:latest"
METRICS = {
    "total_duration": 1_000_000,
    "load_duration": 10_000,
    "prompt_eval_count": 12,
    "prompt_eval_duration": 100_000,
    "eval_duration": 500_000,
}
STREAM_HEADERS = {"Content-Type": "application/x-ndjson"}
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def _created() -> str:
    """A fixed RFC 3339 timestamp (the gateway must not care about its value)."""
    return "2026-08-20T10:00:00.123456Z"


class FakeUpstream:
    """Pre-renders every reply once; handlers only write bytes."""

    def __init__(self, tokens: int) -> None:
        words = [f"tok{i} " for i in range(tokens)]
        base = {"model": MODEL, "created_at": _created()}
        self.chat_lines = [
            (
                json.dumps({**base, "message": {"role": "assistant", "content": w}, "done": False})
                + "\n"
            ).encode()
            for w in words
        ]
        self.chat_lines.append(
            (
                json.dumps(
                    {
                        **base,
                        "message": {"role": "assistant", "content": ""},
                        "done": True,
                        "done_reason": "stop",
                        **METRICS,
                        "eval_count": tokens,
                    }
                )
                + "\n"
            ).encode()
        )
        self.chat_whole = json.dumps(
            {
                **base,
                "message": {"role": "assistant", "content": "".join(words)},
                "done": True,
                "done_reason": "stop",
                **METRICS,
                "eval_count": tokens,
            }
        ).encode()
        self.gen_lines = [
            (json.dumps({**base, "response": w, "done": False}) + "\n").encode() for w in words
        ]
        self.gen_lines.append(
            (
                json.dumps(
                    {
                        **base,
                        "response": "",
                        "done": True,
                        "done_reason": "stop",
                        **METRICS,
                        "eval_count": tokens,
                    }
                )
                + "\n"
            ).encode()
        )
        self.gen_whole = json.dumps(
            {
                **base,
                "response": "".join(words),
                "done": True,
                "done_reason": "stop",
                **METRICS,
                "eval_count": tokens,
            }
        ).encode()
        details = {
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "1B",
            "quantization_level": "Q4_K_M",
        }
        self.tags = json.dumps(
            {
                "models": [
                    {
                        "name": MODEL,
                        "model": MODEL,
                        "modified_at": _created(),
                        "size": 1,
                        "digest": "0" * 64,
                        "details": details,
                        "capabilities": ["completion"],
                    }
                ]
            }
        ).encode()
        self.show = json.dumps(
            {
                "details": details,
                "capabilities": ["completion"],
                "parameters": "",
                "model_info": {"general.architecture": "llama", "llama.context_length": 8192},
                "modified_at": _created(),
            }
        ).encode()

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        app.router.add_post("/api/chat", self.chat)
        app.router.add_post("/api/generate", self.generate)
        app.router.add_get("/api/tags", self.simple(self.tags))
        app.router.add_post("/api/show", self.simple(self.show))
        app.router.add_get("/api/version", self.simple(b'{"version":"0.33.0"}'))
        app.router.add_get("/", self.root)
        return app

    @staticmethod
    def simple(body: bytes) -> Any:
        """A handler that answers fixed JSON."""

        async def handler(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=body, headers=JSON_HEADERS)

        return handler

    async def root(self, request: web.Request) -> web.Response:
        """Ollama's liveness answer."""
        return web.Response(text="Ollama is running")

    async def _reply(
        self, request: web.Request, lines: list[bytes], whole: bytes
    ) -> web.StreamResponse:
        """Stream `lines` as NDJSON (a write per line, as Ollama flushes), or answer `whole`."""
        raw = await request.read()
        # A cheap check instead of a JSON parse: `"stream": false` or `"stream":false`.
        if b'"stream": false' in raw or b'"stream":false' in raw:
            return web.Response(body=whole, headers=JSON_HEADERS)
        resp = web.StreamResponse(headers=STREAM_HEADERS)
        await resp.prepare(request)
        for line in lines:
            await resp.write(line)
        await resp.write_eof()
        return resp

    async def chat(self, request: web.Request) -> web.StreamResponse:
        """/api/chat."""
        return await self._reply(request, self.chat_lines, self.chat_whole)

    async def generate(self, request: web.Request) -> web.StreamResponse:
        """/api/generate."""
        return await self._reply(request, self.gen_lines, self.gen_whole)


def passthrough_app(target: str) -> web.Application:
    """A bare reverse proxy: one ClientSession, body forwarded, response copied per chunk."""
    target = target.rstrip("/")
    app = web.Application()
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def session_ctx(app: web.Application) -> Any:
        app[session_key] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=600),
        )
        yield
        await app[session_key].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with app[session_key].request(
            request.method,
            target + request.rel_url.path_qs,
            data=body,
            headers={"Content-Type": request.content_type},
        ) as up:
            resp = web.StreamResponse(
                status=up.status,
                headers={
                    "Content-Type": up.headers.get("Content-Type", "application/octet-stream")
                },
            )
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    """Command line: serve the fake, or the pass-through."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=10, help="content lines per reply")
    parser.add_argument("--passthrough", metavar="URL", help="proxy to URL instead")
    args = parser.parse_args()
    app = passthrough_app(args.passthrough) if args.passthrough else FakeUpstream(args.tokens).app()
    started = time.strftime("%H:%M:%S")
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        access_log=None,
        print=lambda *_: print(f"{started} serving on {args.host}:{args.port}", flush=True),
    )


if __name__ == "__main__":
    main()
