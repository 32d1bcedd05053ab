"""The models page: the catalog table, enable/disable, and the overrides editor."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from api.core.catalog import ModelInfo
from api.core.errors import APIError
from appkeys import CATALOG, REGISTRY, AppState
from state.registry import Registry, canonical_model
from web.pages_util import EDITOR_CHOICES, option_rows

log = logging.getLogger(__name__)


async def list_models(app: AppState) -> tuple[list[ModelInfo], str | None]:
    """The catalog's models and, when Ollama could not be asked, the reason in plain words."""
    catalog = app.get(CATALOG)
    if catalog is None:
        return [], "the model catalog is not available"
    try:
        return await catalog.list_models(), None
    except APIError as exc:
        return [], exc.message


def _config_entry(registry: Registry, name: str) -> Any:
    """The config.yaml `models:` entry for a model (any spelling of its name), or None."""
    canon = canonical_model(name)
    for cfg_name, entry in registry.config.models.items():
        if canonical_model(cfg_name) == canon:
            return entry
    return None


def model_row(registry: Registry, info: ModelInfo) -> dict[str, Any]:
    """Everything the models table and editor show about one model."""
    name = info.name
    eff = registry.model_settings(name)
    ui = registry.model_state.get(canonical_model(name), {})
    cfg = _config_entry(registry, name)
    cfg_overrides = dict(cfg.overrides) if cfg else {}
    cfg_enforce = dict(cfg.enforce) if cfg else {}
    ui_overrides = dict(ui.get("overrides") or {})
    # The model's own reasoning_output field is edited as a row of the same editor.
    if ui.get("reasoning_output"):
        ui_overrides["reasoning_output"] = ui["reasoning_output"]
    if cfg and cfg.reasoning_output:
        cfg_overrides["reasoning_output"] = cfg.reasoning_output
    rows = option_rows(ui_overrides, ui.get("enforce"), cfg_overrides, cfg_enforce)
    return {
        "name": name,
        "display_name": eff.display_name or info.display_name,
        "ui_display_name": ui.get("display_name"),
        "display_locked": bool(cfg and cfg.display_name),
        "capabilities": list(info.capabilities),
        "context_length": info.context_length,
        "parameter_size": info.parameter_size,
        "quantization": info.quantization,
        "enabled": eff.enabled,
        "enabled_locked": bool(cfg and cfg.enabled is not None),
        "override_count": len(eff.overrides) + len(eff.enforce),
        "rows": rows,
    }


async def models_page(request: web.Request) -> web.StreamResponse:
    """GET /admin/models."""
    registry = request.config_dict[REGISTRY]
    found, error = await list_models(request.config_dict)
    models = [model_row(registry, info) for info in found]
    return aiohttp_jinja2.render_template(
        "models.html",
        request,
        {"models": models, "catalog_error": error, "choices": EDITOR_CHOICES},
    )
