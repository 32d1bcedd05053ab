"""Admin JSON API for models and settings (keys: web/admin_api.py).

- GET /admin/api/models -> {"models": [...], "error": null | "why Ollama could not be read"}
  Each model: ollama_name, display_name, enabled, available (installed in Ollama),
  capabilities, context_length, parameter_size, quantization, family, size,
  overrides/enforce as {option: {"value", "source": "config" | "ui"}}, reasoning_output,
  locked (fields config.yaml sets, which the admin cannot change).
- POST /admin/api/models/refresh: re-read Ollama's model list, then as GET.
- PATCH /admin/api/models/{ollama_name} {"display_name"?, "enabled"?, "overrides"?,
  "enforce"?, "reasoning_output"?}: overrides/enforce replace the admin's block; option
  values are checked against Ollama's option table; a bad one is a 400 naming it
  (`overrides.temperature`) and nothing is saved. `enabled: false` makes /v1 refuse the model.
- GET /admin/api/settings, PATCH /admin/api/settings {name: value | null}: admin-editable
  settings only; a setting set in env or config.yaml is locked (400 if changed); null returns
  a setting to its default.
- POST /admin/api/settings/test-ollama {"ollama_url"?}: {"ok", "url", "version"} or
  {"ok": false, "url", "error": {"message"}}.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web

from api.core.errors import APIError
from api.core.upstream import unreachable
from appkeys import CATALOG, REGISTRY, UPSTREAM, AppState
from state.config import SETTINGS, SETTINGS_BY_NAME, ConfigError, _check_value
from state.keyfields import FieldError, _plain_text
from state.options import REASONING_OUTPUT_MODES, OptionError, validate_overrides
from state.registry import Registry, RegistryState, canonical_model
from web.jsonapi import AdminError, bad, read_json

MODEL_FIELDS = frozenset({"display_name", "enabled", "overrides", "enforce", "reasoning_output"})
ADMIN_SETTINGS = tuple(s.name for s in SETTINGS if s.admin)


def _sourced(values: dict[str, Any], config_block: Any) -> dict[str, dict[str, Any]]:
    """{option: {"value", "source"}} for an effective overrides/enforce block."""
    cfg = dict(config_block or {})
    return {k: {"value": v, "source": "config" if k in cfg else "ui"} for k, v in values.items()}


def model_json(registry: Registry, name: str, info: Any) -> dict[str, Any]:
    """One model for the admin: Ollama's facts plus the effective settings and their source."""
    eff = registry.model_settings(name)
    cfg = registry.model_config(name)
    locked = [
        f
        for f in ("display_name", "enabled", "reasoning_output")
        if cfg is not None and getattr(cfg, f) is not None
    ]
    return {
        "ollama_name": eff.ollama_name,
        "display_name": eff.display_name,
        "enabled": eff.enabled,
        "available": info is not None,
        "capabilities": list(getattr(info, "capabilities", []) or []),
        "context_length": getattr(info, "context_length", None),
        "parameter_size": getattr(info, "parameter_size", None),
        "quantization": getattr(info, "quantization", None),
        "family": getattr(info, "family", None),
        "size": getattr(info, "size", None),
        "overrides": _sourced(dict(eff.overrides), cfg.overrides if cfg else None),
        "enforce": _sourced(dict(eff.enforce), cfg.enforce if cfg else None),
        "reasoning_output": eff.reasoning_output,
        "locked": locked,
    }


async def _catalog_models(app: AppState, refresh: bool) -> tuple[list[Any], str | None]:
    """The catalog's models, or ([], why not)."""
    catalog: Any = app.get(CATALOG)
    if catalog is None:
        return [], "The model catalog is not available."
    try:
        if refresh:
            await catalog.refresh()
        return list(await catalog.list_models()), None
    except APIError as exc:
        return [], exc.message


async def _models_response(request: web.Request, refresh: bool) -> web.Response:
    """The merged model list."""
    registry = request.config_dict[REGISTRY]
    infos, error = await _catalog_models(request.config_dict, refresh)
    if refresh and error:
        raise AdminError(502, error)
    by_name = {canonical_model(i.name): i for i in infos}
    names = list(by_name)
    for name in [*registry.model_state, *(canonical_model(n) for n in registry.config.models)]:
        if name not in by_name and name not in names:
            names.append(name)
    models = [model_json(registry, n, by_name.get(n)) for n in names]
    return web.json_response({"models": models, "error": error})


async def list_models(request: web.Request) -> web.Response:
    """GET /admin/api/models."""
    return await _models_response(request, refresh=False)


async def refresh_models(request: web.Request) -> web.Response:
    """POST /admin/api/models/refresh."""
    return await _models_response(request, refresh=True)


def _locked(field: str, name: str) -> AdminError:
    """400 for a model field that config.yaml sets."""
    return bad(
        f"'{field}' of {name} is set in config.yaml (models: {name}) and cannot be "
        "changed here; edit config.yaml instead.",
        field,
    )


def _block(body: dict[str, Any], block: str, cfg: Any, name: str) -> dict[str, Any]:
    """Check an overrides/enforce block; drop options config.yaml already sets to that value."""
    try:
        values = validate_overrides(body[block], prefix=f"{block}.")
    except OptionError as exc:
        raise bad(str(exc), exc.param) from None
    fixed = dict(getattr(cfg, block, None) or {})
    for option, value in list(values.items()):
        if option in fixed:
            if fixed[option] != value:
                raise bad(
                    f"'{option}' for {name} is set in config.yaml ({block}) and cannot "
                    "be changed here.",
                    f"{block}.{option}",
                )
            del values[option]
    return values


async def _taken_names(app: AppState, own: str) -> set[str]:
    """Names a display name must not reuse: other display names and other models' names."""
    registry = app[REGISTRY]
    taken = {d for d, n in registry.display_names().items() if n != own}
    infos, _ = await _catalog_models(app, refresh=False)
    for info in infos:
        canon = canonical_model(info.name)
        if canon != own:
            taken.add(canon)
            taken.add(canon.removesuffix(":latest"))
    return taken


async def patch_model(request: web.Request) -> web.Response:
    """PATCH /admin/api/models/{ollama_name}."""
    registry = request.config_dict[REGISTRY]
    raw_name = request.match_info["name"]
    if not raw_name.strip() or len(raw_name) > 300:
        raise bad("Not a model name.", "ollama_name")
    name = canonical_model(raw_name)
    body = await read_json(request, MODEL_FIELDS)
    cfg = registry.model_config(name)
    changes: dict[str, Any] = {}
    if "display_name" in body:
        value = body["display_name"]
        if value is not None and value != "":
            try:
                value = _plain_text("display_name", value, 100, required=True)
            except FieldError as exc:
                raise bad(exc.message, exc.field) from None
            if value.lower() in await _taken_names(request.config_dict, name):
                raise bad(f"'{value}' is already the name of another model.", "display_name")
        if cfg is not None and cfg.display_name is not None and value != cfg.display_name:
            raise _locked("display_name", name)
        changes["display_name"] = value or None
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise bad("'enabled' must be true or false.", "enabled")
        if cfg is not None and cfg.enabled is not None and body["enabled"] != cfg.enabled:
            raise _locked("enabled", name)
        changes["enabled"] = body["enabled"]
    if "reasoning_output" in body:
        mode = body["reasoning_output"]
        if mode is not None and mode not in REASONING_OUTPUT_MODES:
            raise bad(
                f"'reasoning_output' must be one of {', '.join(REASONING_OUTPUT_MODES)} or null.",
                "reasoning_output",
            )
        if cfg is not None and cfg.reasoning_output is not None and mode != cfg.reasoning_output:
            raise _locked("reasoning_output", name)
        changes["reasoning_output"] = mode
    for block in ("overrides", "enforce"):
        if block in body:
            changes[block] = _block(body, block, cfg, name)

    def op(state: RegistryState) -> None:
        entry = dict(state.models.get(name, {}))
        for field, value in changes.items():
            if value is None or value == {}:
                entry.pop(field, None)
            else:
                entry[field] = value
        if entry:
            state.models[name] = entry
        else:
            state.models.pop(name, None)

    await registry.mutate(op)
    catalog: Any = request.config_dict.get(CATALOG)
    info = None
    if catalog is not None:
        try:
            info = await catalog.resolve(name)
        except APIError:
            info = None
    return web.json_response(model_json(registry, name, info))


def _setting_json(registry: Registry, name: str) -> dict[str, Any]:
    """One admin setting with its value and where it comes from."""
    s = SETTINGS_BY_NAME[name]
    source = registry.setting_source(name)
    env_set = bool(s.env) and source == "config" and name in registry.config.explicit
    return {
        "name": name,
        "value": registry.setting(name),
        "default": s.default,
        "type": s.type.__name__,
        "choices": list(s.choices),
        "help": s.help,
        "source": source,
        "locked": source == "config",
        "locked_by": (f"${s.env} or config.yaml" if env_set else "config.yaml")
        if source == "config"
        else None,
    }


async def get_settings(request: web.Request) -> web.Response:
    """GET /admin/api/settings."""
    registry = request.config_dict[REGISTRY]
    return web.json_response({"settings": [_setting_json(registry, n) for n in ADMIN_SETTINGS]})


def _check_setting(name: str, value: Any) -> Any:
    """Check one setting value from the admin; raise a 400 naming it."""
    if name == "defaults":
        if not isinstance(value, dict):
            raise bad("'defaults' must be an object of option: value.", name)
        try:
            return validate_overrides(value, prefix="defaults.")
        except OptionError as exc:
            raise bad(str(exc), exc.param) from None
    try:
        value = _check_value(SETTINGS_BY_NAME[name], value, "admin")
    except ConfigError as exc:
        raise bad(str(exc).removeprefix("admin: "), name) from None
    if name == "ollama_url":
        value = value.strip().rstrip("/")
        scheme, _, rest = value.partition("://")
        if scheme not in ("http", "https") or not rest or any(c.isspace() for c in value):
            raise bad("'ollama_url' must be an http(s) URL such as http://localhost:11434.", name)
    return value


async def patch_settings(request: web.Request) -> web.Response:
    """PATCH /admin/api/settings {name: value | null}."""
    registry = request.config_dict[REGISTRY]
    body = await read_json(request)
    changes: dict[str, Any] = {}
    for name, value in body.items():
        setting = SETTINGS_BY_NAME.get(name)
        if setting is None or not setting.admin:
            raise bad(
                f"'{name}' is not a setting the admin can change. Editable: "
                f"{', '.join(ADMIN_SETTINGS)}.",
                name,
            )
        checked = None if value is None else _check_setting(name, value)
        if name in registry.config.explicit:
            if checked is not None and checked == registry.setting(name):
                continue  # unchanged locked value sent back by a form
            raise bad(
                f"'{name}' is set in config.yaml or the environment and cannot be "
                "changed here; edit it there.",
                name,
            )
        changes[name] = checked

    def op(state: RegistryState) -> None:
        for name, value in changes.items():
            if value is None:
                state.settings.pop(name, None)
            else:
                state.settings[name] = value

    await registry.mutate(op)  # the upstream follows a new ollama_url (registry listener)
    return await get_settings(request)


async def check_ollama(request: web.Request) -> web.Response:
    """POST /admin/api/settings/test-ollama: can the gateway reach Ollama at this URL?"""
    body = await read_json(request, frozenset({"ollama_url", "url"}), optional=True)
    raw = body.get("ollama_url", body.get("url"))
    url = (
        request.config_dict[REGISTRY].setting("ollama_url")
        if raw in (None, "")
        else _check_setting("ollama_url", raw)
    )
    field = "url" if "url" in body else "ollama_url"
    session = request.config_dict[UPSTREAM].session
    try:
        async with session.get(
            url + "/api/version", timeout=aiohttp.ClientTimeout(total=5)
        ) as resp:
            status, data = resp.status, await resp.read()
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return _test_failed(url, unreachable(url, exc).message, field)
    if status != 200:
        return _test_failed(
            url, f"{url} answered HTTP {status} to /api/version; is this an Ollama server?", field
        )
    try:
        version = json.loads(data).get("version")
    except (ValueError, AttributeError):
        version = None
    if not isinstance(version, str):
        return _test_failed(
            url, f"{url} answered, but not like Ollama (no version in /api/version).", field
        )
    return web.json_response({"ok": True, "url": url, "version": version})


def _test_failed(url: str, message: str, field: str) -> web.Response:
    """The answer for a failed connection test (200: the test itself worked)."""
    return web.json_response(
        {"ok": False, "url": url, "error": {"message": message, "field": field}}
    )


def setup_models_api(app: web.Application) -> None:
    """Register the model and settings routes."""
    app.router.add_get("/api/models", list_models)
    app.router.add_post("/api/models/refresh", refresh_models)
    app.router.add_patch("/api/models/{name:.+}", patch_model)
    app.router.add_get("/api/settings", get_settings)
    app.router.add_patch("/api/settings", patch_settings)
    app.router.add_post("/api/settings/test-ollama", check_ollama)
