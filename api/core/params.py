"""Sampling parameters and Ollama extras: read from a request, layered with model settings.

Precedence (decided project-wide): the request, then the model's `overrides`, then the global
`defaults`; a model's `enforce` block beats the request. Nothing is ever injected: an option
that no layer sets stays unset, so the model's Modelfile default applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from state.options import (
    OPTIONS_BY_NAME,
    REASONING_OUTPUT_MODES,
    OptionError,
    check_keep_alive,
    check_option,
    check_think,
)

# OpenAI request field -> Ollama option. max_completion_tokens wins over max_tokens.
OPENAI_SAMPLING = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "stop": "stop",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "max_tokens": "num_predict",
    "max_completion_tokens": "num_predict",
}
# Top-level (or extra_body) native request fields passed through after a type check.
NATIVE_FLAGS = ("truncate", "shift")

# reasoning_effort / reasoning.effort -> native think (wire doc B.2).
EFFORT_TO_THINK: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "max": "max",
    "xhigh": "max",
    "ultra": "max",
}


@dataclass
class Params:
    """What a request asks for beyond messages: Ollama options and native top-level fields."""

    options: dict[str, Any] = field(default_factory=dict)
    think: bool | str | None = None
    keep_alive: int | float | str | None = None
    flags: dict[str, bool] = field(default_factory=dict)


def read_params(body: Mapping[str, Any]) -> Params:
    """Collect options from `options`, top-level extras and OpenAI fields; raise OptionError."""
    out = Params()
    raw_options = body.get("options")
    if raw_options is not None:
        if not isinstance(raw_options, Mapping):
            raise OptionError("options", "'options' must be an object of Ollama options.")
        for name, value in raw_options.items():
            if value is None:
                continue
            if name == "think":
                out.think = check_think(value, "options.think")
            elif name == "keep_alive":
                out.keep_alive = check_keep_alive(value, "options.keep_alive")
            elif name in OPTIONS_BY_NAME:
                out.options[name] = check_option(name, value, f"options.{name}")
            else:
                raise OptionError(
                    f"options.{name}",
                    f"Unknown Ollama option '{name}'. Known: {', '.join(OPTIONS_BY_NAME)}.",
                )
    # Top-level Ollama options (vLLM-style extras, or the SDK's extra_body) beat `options`.
    for name in OPTIONS_BY_NAME:
        if body.get(name) is not None and name not in OPENAI_SAMPLING:
            out.options[name] = check_option(name, body[name], name)
    for param, option in OPENAI_SAMPLING.items():
        if param == "max_tokens" and body.get("max_completion_tokens") is not None:
            continue
        if body.get(param) is not None:
            value = check_option(option, body[param], param)
            if option == "num_predict" and value < 1:
                raise OptionError(param, f"'{param}' must be at least 1.")
            out.options[option] = value
    if body.get("keep_alive") is not None:
        out.keep_alive = check_keep_alive(body["keep_alive"])
    for flag in NATIVE_FLAGS:
        if body.get(flag) is not None:
            if not isinstance(body[flag], bool):
                raise OptionError(flag, f"'{flag}' must be true or false.")
            out.flags[flag] = body[flag]
    think = read_think(body)
    if think is not None:
        out.think = think
    return out


def read_think(body: Mapping[str, Any]) -> bool | str | None:
    """`think`, else `reasoning.effort`, else `reasoning_effort`, as a native think value."""
    if body.get("think") is not None:
        return check_think(body["think"])
    reasoning = body.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, Mapping):
        raise OptionError("reasoning", '\'reasoning\' must be an object such as {"effort": "low"}.')
    for param, value in (
        ("reasoning.effort", (reasoning or {}).get("effort")),
        ("reasoning_effort", body.get("reasoning_effort")),
    ):
        if value is None:
            continue
        if not isinstance(value, str) or value.lower() not in EFFORT_TO_THINK:
            raise OptionError(param, f"'{param}' must be one of {', '.join(EFFORT_TO_THINK)}.")
        return EFFORT_TO_THINK[value.lower()]
    return None


def _split(layer: Mapping[str, Any]) -> Params:
    """A settings layer (overrides/enforce/defaults, already validated) as Params."""
    p = Params()
    for name, value in layer.items():
        if name == "think":
            p.think = value
        elif name == "keep_alive":
            p.keep_alive = value
        elif name in OPTIONS_BY_NAME:
            p.options[name] = value
    return p


def layer_params(
    request: Params,
    overrides: Mapping[str, Any],
    enforce: Mapping[str, Any],
    defaults: Mapping[str, Any],
) -> Params:
    """Apply precedence: enforce > request > model overrides > global defaults."""
    out = Params(flags=dict(request.flags))
    for layer in (_split(defaults), _split(overrides), request, _split(enforce)):
        out.options.update(layer.options)
        if layer.think is not None:
            out.think = layer.think
        if layer.keep_alive is not None:
            out.keep_alive = layer.keep_alive
    return out


def reasoning_mode(
    model_mode: str | None,
    overrides: Mapping[str, Any],
    defaults: Mapping[str, Any],
    global_mode: str | None,
) -> str:
    """The reasoning output mode: model setting, model override, default block, global."""
    for mode in (
        model_mode,
        overrides.get("reasoning_output"),
        defaults.get("reasoning_output"),
        global_mode,
    ):
        if mode in REASONING_OUTPUT_MODES:
            return str(mode)
    return "reasoning_content"


def apply_capabilities(params: Params, capabilities: set[str] | None) -> None:
    """Drop a think request for a model that cannot think (Ollama would answer 400)."""
    if capabilities is not None and "thinking" not in capabilities:
        params.think = None


def native_fields(params: Params) -> dict[str, Any]:
    """The native request fields for these params (only the ones that are set)."""
    out: dict[str, Any] = {}
    if params.options:
        out["options"] = dict(params.options)
    if params.think is not None:
        out["think"] = params.think
    if params.keep_alive is not None:
        out["keep_alive"] = params.keep_alive
    out.update(params.flags)
    return out
