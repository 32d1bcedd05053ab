"""The settings page: admin-editable settings, global defaults, password change."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from appkeys import REGISTRY
from state.config import SETTINGS_BY_NAME
from state.registry import Registry
from web.pages_util import EDITOR_CHOICES, option_rows

LABELS: dict[str, str] = {
    "ollama_url": "Ollama URL",
    "reasoning_output": "Reasoning output mode",
    "image_fetch": "Fetch image URLs in chat messages",
    "key_rotation_grace": "Old secret works after rotation (seconds)",
    "usage_retention_days": "Keep usage rows (days, 0 = forever)",
    "usage_retention_rows": "Keep at most this many usage rows (0 = no limit)",
    "content_logging": "Store prompt and response text with usage rows",
    "content_retention_days": "Erase stored prompt/response text after (days)",
}
# Shown in the "Other settings" card, in this order (the rest have cards of their own).
OTHER_SETTINGS = (
    "image_fetch",
    "key_rotation_grace",
    "usage_retention_days",
    "usage_retention_rows",
    "content_logging",
    "content_retention_days",
)


def _locked_by(registry: Registry, name: str) -> str | None:
    """Where a locked setting comes from: its environment variable, or config.yaml."""
    if name not in registry.config.explicit:
        return None
    setting = SETTINGS_BY_NAME[name]
    # Config.explicit does not say which of the two it was.
    return f"config.yaml or ${setting.env}" if setting.env else "config.yaml"


def setting_fields(registry: Registry) -> dict[str, dict[str, Any]]:
    """Each admin-editable setting with its current effective value and lock state."""
    out: dict[str, dict[str, Any]] = {}
    for name in ("ollama_url", "reasoning_output", *OTHER_SETTINGS):
        setting = SETTINGS_BY_NAME[name]
        kind = {bool: "bool", int: "int"}.get(setting.type, "str")
        if name == "ollama_url":
            kind = "url"
        locked_by = _locked_by(registry, name)
        out[name] = {
            "name": name,
            "label": LABELS.get(name, name),
            "kind": kind,
            "value": registry.setting(name),
            "help": setting.help,
            "choices": setting.choices,
            "locked": locked_by is not None,
            "locked_by": locked_by,
        }
    return out


def default_rows(registry: Registry) -> list[dict[str, Any]]:
    """The global defaults editor rows; all locked when config.yaml sets `defaults`.

    `defaults` is one setting: a `defaults:` block in config.yaml replaces the admin's block
    as a whole (registry.setting), so then nothing here can take effect.
    """
    gateway = ("think", "keep_alive")
    if "defaults" in registry.config.explicit:
        rows = option_rows(None, None, dict(registry.config.defaults), None, gateway=gateway)
        for row in rows:
            row["locked"], row["source"] = True, row["source"] or "config"
        return rows
    ui = registry.settings_state.get("defaults") or {}
    return option_rows(ui, None, None, None, gateway=gateway)


async def settings_page(request: web.Request) -> web.StreamResponse:
    """GET /admin/settings."""
    registry = request.config_dict[REGISTRY]
    return aiohttp_jinja2.render_template(
        "settings.html",
        request,
        {
            "settings": setting_fields(registry),
            "other_settings": OTHER_SETTINGS,
            "default_rows": default_rows(registry),
            "defaults_locked": "defaults" in registry.config.explicit,
            "choices": EDITOR_CHOICES,
            "errors": {},
        },
    )
