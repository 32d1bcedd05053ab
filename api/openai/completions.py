"""Legacy /v1/completions and /v1/embeddings translation (pure; no I/O).

Thinking from thinking models is not part of the legacy completions shape: it is dropped from
`text` (the completion is the answer only), as `reasoning_output: hidden` would.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from api.core.params import Params, apply_capabilities, layer_params, native_fields, read_params
from api.openai.chat_response import finish_reason, usage_of
from state.options import OptionError

MAX_N = 16
MAX_PROMPTS = 32  # prompts in one request's `prompt` array
MAX_GENERATIONS = 64  # upstream generations (prompts x n) one request may start


@dataclass
class CompletionPlan:
    """Native /api/generate bodies (one per prompt and choice) and response options."""

    natives: list[dict[str, Any]]
    prompts: list[str]
    stream: bool = False
    include_usage: bool = False
    echo: bool = False
    logprobs: int | None = None


def text_list(value: Any, param: str) -> list[str]:
    """A `prompt` or `input`: a string or a non-empty list of strings (token arrays refused)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, list) and value and all(isinstance(v, int | list) for v in value):
        raise OptionError(
            param,
            f"Token arrays in '{param}' are not supported (Ollama has no "
            "detokenize endpoint); send text.",
        )
    raise OptionError(param, f"'{param}' must be a string or a non-empty array of strings.")


def from_completion_request(
    body: Mapping[str, Any],
    *,
    model: str,
    capabilities: set[str] | None,
    overrides: Mapping[str, Any],
    enforce: Mapping[str, Any],
    defaults: Mapping[str, Any],
) -> CompletionPlan:
    """Translate a completions request; raise OptionError naming the bad parameter."""
    prompts = text_list(body.get("prompt"), "prompt")
    if len(prompts) > MAX_PROMPTS:
        raise OptionError(
            "prompt",
            f"'prompt' has {len(prompts)} entries; at most {MAX_PROMPTS} prompts per request.",
        )
    params: Params = layer_params(read_params(body), overrides, enforce, defaults)
    apply_capabilities(params, capabilities)
    n = body.get("n", 1) if body.get("n") is not None else 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise OptionError("n", f"'n' must be an integer between 1 and {MAX_N}.")
    if len(prompts) * n > MAX_GENERATIONS:
        raise OptionError(
            "n",
            f"{len(prompts)} prompts x n={n} would start "
            f"{len(prompts) * n} generations; at most {MAX_GENERATIONS} "
            "per request.",
        )
    plan = CompletionPlan(natives=[], prompts=[])
    plan.stream = _flag(body, "stream")
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, Mapping):
            raise OptionError("stream_options", "'stream_options' must be an object.")
        plan.include_usage = _flag(options, "include_usage", "stream_options.include_usage")
    plan.echo = _flag(body, "echo")
    logprobs = body.get("logprobs")
    if logprobs is not None and (
        isinstance(logprobs, bool) or not isinstance(logprobs, int) or not 0 <= logprobs <= 20
    ):
        raise OptionError("logprobs", "'logprobs' must be an integer between 0 and 20.")
    plan.logprobs = logprobs
    suffix = body.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise OptionError("suffix", "'suffix' must be a string.")
    base: dict[str, Any] = {"model": model, "stream": True, **native_fields(params)}
    if suffix:
        base["suffix"] = suffix
    if logprobs is not None:
        base["logprobs"] = True
        base["top_logprobs"] = logprobs
    seed = params.options.get("seed")
    for text in prompts:
        for i in range(n):
            native = {**base, "prompt": text}
            if seed is not None and i:
                native["options"] = {**base["options"], "seed": seed + i}
            plan.natives.append(native)
            plan.prompts.append(text)
    return plan


def _flag(body: Mapping[str, Any], name: str, param: str | None = None) -> bool:
    """A boolean field (null: false)."""
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise OptionError(param or name, f"'{param or name}' must be true or false.")
    return value


@dataclass
class TextChoice:
    """Accumulates one /api/generate stream into a text_completion choice."""

    index: int
    prompt: str = ""
    echo: bool = False
    logprobs: int | None = None
    text: list[str] = field(default_factory=list)
    final: dict[str, Any] | None = None
    _offset: int = 0
    _echoed: bool = False

    def __post_init__(self) -> None:
        self._offset = len(self.prompt) if self.echo else 0

    def feed(self, line: Mapping[str, Any]) -> dict[str, Any] | None:
        """The streaming choice for one native line, or None when it carries nothing."""
        response = line.get("response")
        piece = response if isinstance(response, str) else ""
        if self.echo and not self._echoed:
            piece = self.prompt + piece
            self._echoed = True
        found = line.get("logprobs")
        raw: list[Any] = found if isinstance(found, list) else []
        lp = self._logprobs(raw)
        if line.get("done"):
            self.final = dict(line)
        if piece:
            self.text.append(piece)
        if not piece and not raw and not line.get("done"):
            return None
        return {
            "text": piece,
            "index": self.index,
            "logprobs": lp,
            "finish_reason": finish_reason(line.get("done_reason"), False)
            if line.get("done")
            else None,
        }

    def _logprobs(self, raw: list[Any]) -> dict[str, Any] | None:
        """Native logprobs -> the completions shape (tokens, token_logprobs, ...)."""
        if self.logprobs is None:
            return None
        out: dict[str, Any] = {
            "tokens": [],
            "token_logprobs": [],
            "top_logprobs": [],
            "text_offset": [],
        }
        for entry in raw:
            if not isinstance(entry, Mapping):
                continue
            token = str(entry.get("token", ""))
            out["tokens"].append(token)
            out["token_logprobs"].append(entry.get("logprob"))
            found = entry.get("top_logprobs")
            tops: list[Any] = found if isinstance(found, list) else []
            out["top_logprobs"].append(
                {str(t.get("token")): t.get("logprob") for t in tops if isinstance(t, Mapping)}
            )
            out["text_offset"].append(self._offset)
            self._offset += len(token)
        return out

    def choice(self, all_logprobs: dict[str, Any] | None) -> dict[str, Any]:
        """The non-streaming choice."""
        return {
            "text": "".join(self.text),
            "index": self.index,
            "logprobs": all_logprobs,
            "finish_reason": finish_reason((self.final or {}).get("done_reason"), False),
        }

    def usage(self) -> dict[str, Any]:
        """Usage from the final line."""
        return usage_of(self.final)


def merge_logprobs(parts: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Concatenate per-line completions logprobs."""
    real = [p for p in parts if p is not None]
    if not real:
        return None
    return {
        k: [v for p in real for v in p[k]]
        for k in ("tokens", "token_logprobs", "top_logprobs", "text_offset")
    }


def embed_request(
    body: Mapping[str, Any],
    model: str,
    overrides: Mapping[str, Any],
    enforce: Mapping[str, Any],
    defaults: Mapping[str, Any],
) -> dict[str, Any]:
    """An OpenAI embeddings request -> native /api/embed body."""
    inputs = text_list(body.get("input"), "input")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise OptionError("encoding_format", "'encoding_format' must be 'float' or 'base64'.")
    native: dict[str, Any] = {"model": model, "input": inputs}
    dims = body.get("dimensions")
    if dims is not None:
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
            raise OptionError("dimensions", "'dimensions' must be a positive integer.")
        native["dimensions"] = dims
    params = layer_params(read_params(body), overrides, enforce, defaults)
    fields = native_fields(params)
    fields.pop("think", None)
    native.update(fields)
    return native


def to_embeddings(native: Mapping[str, Any], label: str, encoding: str) -> dict[str, Any]:
    """A native /api/embed answer -> OpenAI's embeddings list."""
    found = native.get("embeddings")
    vectors: list[Any] = found if isinstance(found, list) else []
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": encode_vector(v) if encoding == "base64" else v,
        }
        for i, v in enumerate(vectors)
    ]
    prompt = usage_of(native)["prompt_tokens"]
    return {
        "object": "list",
        "data": data,
        "model": label,
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


def encode_vector(vector: list[float]) -> str:
    """A vector as base64 of little-endian float32, as OpenAI encodes it."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
