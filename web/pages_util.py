"""Pure helpers for the admin pages: number/time formatting and the overrides editor rows."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape

from state.options import GATEWAY_PARAMS, OLLAMA_OPTIONS, REASONING_OUTPUT_MODES, THINK_LEVELS

# Input kinds the editor's JS knows how to check: int, float, bool, string[], think,
# duration, reasoning.
GATEWAY_KINDS: dict[str, str] = {
    "think": "think",
    "keep_alive": "duration",
    "reasoning_output": "reasoning",
}
GATEWAY_DEFAULTS: dict[str, str] = {
    "think": "model's (on for thinking models)",
    "keep_alive": "Ollama's (5m)",
    "reasoning_output": "the global setting",
}


def fmt_bytes(value: Any) -> str:
    """1536 -> '1.5 KB'; None -> '–'."""
    if value is None or value == "":
        return "–"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"  # pragma: no cover - loop always returns


def fmt_num(value: Any) -> str:
    """12345 -> '12,345'; None -> '–'."""
    if value is None or value == "":
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def fmt_time(ts: Any) -> str:
    """A Unix time as 'YYYY-MM-DD HH:MM UTC'; None -> 'never'."""
    if ts is None or ts == "":
        return "never"
    if isinstance(ts, str):
        return ts
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M UTC")


def fmt_ago(ts: Any, now: float | None = None) -> str:
    """A Unix time relative to now: 'just now', '5 min ago', '3 h ago', '2 days ago'."""
    if ts is None or ts == "":
        return "never"
    if isinstance(ts, str):
        return ts
    delta = (time.time() if now is None else now) - float(ts)
    if delta < 0:
        ahead = -delta
        if ahead < 3600:
            return f"in {max(1, int(ahead // 60))} min"
        if ahead < 86400:
            return f"in {int(ahead // 3600)} h"
        return f"in {int(ahead // 86400)} days"
    if delta < 60:
        return "just now"
    if delta < 3600:
        return f"{int(delta // 60)} min ago"
    if delta < 86400:
        return f"{int(delta // 3600)} h ago"
    days = int(delta // 86400)
    return "1 day ago" if days == 1 else f"{days} days ago"


def ticks(text: str) -> Markup:
    """Help text with `code` spans as <code> (escaped first, so nothing else is markup)."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


def input_value(value: Any) -> str:
    """How an override value is written in the editor's text box."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return (
            value[0]
            if len(value) == 1 and isinstance(value[0], str) and not value[0].startswith("[")
            else json.dumps(value)
        )
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return str(value)


def _row(
    name: str,
    kind: str,
    default: str,
    help_text: str,
    runner: bool,
    ui: Mapping[str, Any],
    ui_enforce: Mapping[str, Any],
    cfg: Mapping[str, Any],
    cfg_enforce: Mapping[str, Any],
) -> dict[str, Any]:
    """One editor row: where the option's value comes from and whether it may be edited."""
    if name in cfg_enforce:
        value, mode, source = cfg_enforce[name], "enforce", "config"
    elif name in cfg:
        value, mode, source = cfg[name], "override", "config"
    elif name in ui_enforce:
        value, mode, source = ui_enforce[name], "enforce", "ui"
    elif name in ui:
        value, mode, source = ui[name], "override", "ui"
    else:
        value, mode, source = None, "override", None
    return {
        "name": name,
        "kind": kind,
        "default": default,
        "help": help_text,
        "runner": runner,
        "value": input_value(value),
        "mode": mode,
        "source": source,
        "locked": source == "config",
    }


def option_rows(
    ui: Mapping[str, Any] | None = None,
    ui_enforce: Mapping[str, Any] | None = None,
    cfg: Mapping[str, Any] | None = None,
    cfg_enforce: Mapping[str, Any] | None = None,
    gateway: tuple[str, ...] = ("think", "keep_alive", "reasoning_output"),
) -> list[dict[str, Any]]:
    """Every option the editor lists, with its value, mode (override/enforce) and source.

    config.yaml values beat UI values for the same option, so they are shown locked.
    """
    blocks = (ui or {}, ui_enforce or {}, cfg or {}, cfg_enforce or {})
    rows = [
        _row(
            name, GATEWAY_KINDS[name], GATEWAY_DEFAULTS[name], GATEWAY_PARAMS[name], False, *blocks
        )
        for name in gateway
    ]
    rows += [_row(o.name, o.type, o.default, o.help, o.runner, *blocks) for o in OLLAMA_OPTIONS]
    return rows


EDITOR_CHOICES: dict[str, tuple[str, ...]] = {
    "think": ("true", "false", *THINK_LEVELS),
    "reasoning": REASONING_OUTPUT_MODES,
    "bool": ("true", "false"),
}
