"""Ollama's option table (wire doc A.4) plus the gateway's own parameters, with type checks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class OptionError(ValueError):
    """A parameter with a bad name or value; `param` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One Ollama option: its JSON type, Ollama's default, whether it reloads the model."""

    name: str
    type: str  # "int" | "float" | "bool" | "string[]"
    default: str
    help: str
    runner: bool = False


# api.Options + api.Runner as of Ollama v0.33 (wire doc A.4).
OLLAMA_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("num_ctx", "int", "auto (4k-256k by VRAM)", "Context window in tokens.", True),
    OptionSpec("num_batch", "int", "512", "Prompt batch size.", True),
    OptionSpec("num_gpu", "int", "-1 (auto)", "Layers offloaded to the GPU.", True),
    OptionSpec("main_gpu", "int", "0", "GPU used for small tensors.", True),
    OptionSpec("use_mmap", "bool", "auto", "Memory-map the model file.", True),
    OptionSpec("num_thread", "int", "0 (auto)", "CPU threads.", True),
    OptionSpec("draft_num_predict", "int", "4 with a draft model", "Speculative tokens.", True),
    OptionSpec("num_keep", "int", "4", "Tokens kept on a context shift."),
    OptionSpec("seed", "int", "-1 (random)", "Random seed."),
    OptionSpec("num_predict", "int", "-1 (unbounded)", "Max new tokens, thinking included."),
    OptionSpec("top_k", "int", "40", "Sample from the k most likely tokens."),
    OptionSpec("top_p", "float", "0.9", "Nucleus sampling."),
    OptionSpec("min_p", "float", "0.0", "Minimum relative probability."),
    OptionSpec("typical_p", "float", "1.0", "Locally typical sampling."),
    OptionSpec("repeat_last_n", "int", "64", "Window for repeat penalties (-1 = num_ctx)."),
    OptionSpec("temperature", "float", "0.8", "Sampling temperature."),
    OptionSpec("repeat_penalty", "float", "1.0", "Penalty for repeated tokens."),
    OptionSpec("presence_penalty", "float", "0.0", "Penalty for tokens already present."),
    OptionSpec("frequency_penalty", "float", "0.0", "Penalty by token frequency."),
    OptionSpec("stop", "string[]", "model's", "Stop sequences."),
)
OPTIONS_BY_NAME: dict[str, OptionSpec] = {o.name: o for o in OLLAMA_OPTIONS}

# Parameters that are not Ollama options but may be overridden per model or by default.
GATEWAY_PARAMS: dict[str, str] = {
    "think": "bool or one of low, medium, high, max",
    "keep_alive": "seconds (number) or a duration such as 10m, 24h, -1",
    "reasoning_output": "reasoning_content, reasoning, both, inline or hidden",
}
THINK_LEVELS = ("low", "medium", "high", "max")
REASONING_OUTPUT_MODES = ("reasoning_content", "reasoning", "both", "inline", "hidden")
_DURATION = re.compile(r"^-?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def check_option(name: str, value: Any, param: str | None = None) -> Any:
    """Check one Ollama option's value, coercing where Ollama would; raise OptionError."""
    param = param or name
    spec = OPTIONS_BY_NAME.get(name)
    if spec is None:
        raise OptionError(param, f"Unknown Ollama option '{name}'.")
    if spec.type == "int":
        if isinstance(value, float) and not isinstance(value, bool) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise OptionError(param, f"'{param}' must be an integer, got {_describe(value)}.")
        return value
    if spec.type == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OptionError(param, f"'{param}' must be a number, got {_describe(value)}.")
        return float(value) if isinstance(value, int) else value
    if spec.type == "bool":
        if not isinstance(value, bool):
            raise OptionError(param, f"'{param}' must be true or false, got {_describe(value)}.")
        return value
    # string[]: a bare string is wrapped, as OpenAI clients send `stop` either way.
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise OptionError(param, f"'{param}' must be a string or a list of strings.")
    return value


def check_think(value: Any, param: str = "think") -> bool | str:
    """Check a `think` value: a bool or a level."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in THINK_LEVELS:
        return value.lower()
    raise OptionError(
        param,
        f"'{param}' must be true, false or one of "
        f"{', '.join(THINK_LEVELS)}; got {_describe(value)}.",
    )


def check_keep_alive(value: Any, param: str = "keep_alive") -> int | float | str:
    """Check a `keep_alive` value: seconds as a number, or a Go duration string."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (value == "0" or _DURATION.match(value.strip())):
        return value.strip()
    raise OptionError(
        param,
        f"'{param}' must be a number of seconds or a duration such as "
        f"'10m' or '-1h'; got {_describe(value)}.",
    )


def validate_overrides(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Check a block of per-model overrides or defaults; return it with values coerced."""
    if not isinstance(values, Mapping):
        raise OptionError(prefix.rstrip(".") or "overrides", "Overrides must be an object.")
    out: dict[str, Any] = {}
    for name, value in values.items():
        param = f"{prefix}{name}"
        if name == "think":
            out[name] = check_think(value, param)
        elif name == "keep_alive":
            out[name] = check_keep_alive(value, param)
        elif name == "reasoning_output":
            if value not in REASONING_OUTPUT_MODES:
                raise OptionError(
                    param, f"'{param}' must be one of {', '.join(REASONING_OUTPUT_MODES)}."
                )
            out[name] = value
        elif name in OPTIONS_BY_NAME:
            out[name] = check_option(name, value, param)
        else:
            known = ", ".join([*OPTIONS_BY_NAME, *GATEWAY_PARAMS])
            raise OptionError(param, f"Unknown parameter '{param}'. Known: {known}.")
    return out


def _describe(value: Any) -> str:
    """A short description of a JSON value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "an array"
    return "an object"
