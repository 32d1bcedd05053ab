"""Admin JSON API for keys under /admin/api/keys (models and settings: web/admin_models.py).

Every change is on disk before the response (Registry.mutate). Errors use the admin shape
{"error": {"message", "field"?}}; bad input is a 400 and changes nothing.

- POST /admin/api/keys {"name", "models", "rpm"?, "tpm"?, "max_concurrency"?,
  "expires_at"?, "notes"?, "enabled"?} -> 201 key + "key" (the secret, shown only here and
  in the rotate response)
- GET /admin/api/keys -> {"keys": [...]}; GET/PATCH/DELETE /admin/api/keys/{id}
- POST /admin/api/keys/{id}/rotate -> key + "key" (the old secret keeps working for
  `key_rotation_grace` seconds)
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from appkeys import REGISTRY
from state.keyfields import EDITABLE, FieldError, check_fields, key_json
from state.registry import ApiKey, RegistryState, build_key, rotate_key
from web.jsonapi import AdminError, bad, read_json

log = logging.getLogger(__name__)


def _field_error(exc: FieldError) -> AdminError:
    """A FieldError as a 400 naming the field."""
    return bad(exc.message, exc.field)


def _not_found(key_id: str) -> AdminError:
    """404 for an unknown key id."""
    return AdminError(404, f"No key with id '{key_id[:40]}'.", "id")


def _check_unique_name(state: RegistryState, name: str, key_id: str | None) -> None:
    """Key names are unique (case-insensitive) so lists and the CLI stay unambiguous."""
    for other in state.keys.values():
        if other.id != key_id and other.name.lower() == name.lower():
            raise FieldError("name", f"A key named '{other.name}' already exists.")


async def _fields(request: web.Request, *, creating: bool) -> dict[str, Any]:
    """The request body's key fields, checked."""
    body = await read_json(request, frozenset(EDITABLE))
    try:
        return check_fields(body, creating=creating)
    except FieldError as exc:
        raise _field_error(exc) from None


async def list_keys(request: web.Request) -> web.Response:
    """GET /admin/api/keys."""
    keys = request.config_dict[REGISTRY].keys.values()
    return web.json_response({"keys": [key_json(k) for k in keys]})


async def create_key(request: web.Request) -> web.Response:
    """POST /admin/api/keys."""
    fields = await _fields(request, creating=True)
    key, secret = build_key(fields.pop("name"), fields.pop("models"), **fields)

    def op(state: RegistryState) -> ApiKey:
        _check_unique_name(state, key.name, None)
        state.keys[key.id] = key
        return key

    try:
        saved = await request.config_dict[REGISTRY].mutate(op)
    except FieldError as exc:
        raise _field_error(exc) from None
    log.info("admin created key %s (%s)", saved.id, saved.masked)
    return web.json_response({**key_json(saved), "key": secret}, status=201)


async def get_key(request: web.Request) -> web.Response:
    """GET /admin/api/keys/{id}."""
    key_id = request.match_info["id"]
    key = request.config_dict[REGISTRY].keys.get(key_id)
    if key is None:
        raise _not_found(key_id)
    return web.json_response(key_json(key))


async def update_key(request: web.Request) -> web.Response:
    """PATCH /admin/api/keys/{id}: change any editable field; the secret stays."""
    key_id = request.match_info["id"]
    fields = await _fields(request, creating=False)

    def op(state: RegistryState) -> ApiKey:
        key = state.keys.get(key_id)
        if key is None:
            raise _not_found(key_id)
        if "name" in fields:
            _check_unique_name(state, fields["name"], key_id)
        for name, value in fields.items():
            setattr(key, name, value)
        return key

    try:
        key = await request.config_dict[REGISTRY].mutate(op)
    except FieldError as exc:
        raise _field_error(exc) from None
    return web.json_response(key_json(key))


async def delete_key(request: web.Request) -> web.Response:
    """DELETE /admin/api/keys/{id}: the key stops working at once."""
    key_id = request.match_info["id"]

    def op(state: RegistryState) -> ApiKey:
        key = state.keys.pop(key_id, None)
        if key is None:
            raise _not_found(key_id)
        return key

    key = await request.config_dict[REGISTRY].mutate(op)
    log.info("admin deleted key %s (%s)", key.id, key.masked)
    return web.json_response({"ok": True, "id": key.id, "name": key.name})


async def rotate(request: web.Request) -> web.Response:
    """POST /admin/api/keys/{id}/rotate: a new secret; the old one works for the grace time."""
    key_id = request.match_info["id"]
    registry = request.config_dict[REGISTRY]
    grace = float(registry.setting("key_rotation_grace"))
    secrets: list[str] = []

    def op(state: RegistryState) -> ApiKey:
        key = state.keys.get(key_id)
        if key is None:
            raise _not_found(key_id)
        secrets.append(rotate_key(key, grace))
        return key

    key = await registry.mutate(op)
    log.info("admin rotated key %s (now %s)", key.id, key.masked)
    return web.json_response({**key_json(key), "key": secrets[-1]})


def setup_admin_api(app: web.Application) -> None:
    """Register the admin JSON API routes (keys here, models and settings next door)."""
    from web.admin_models import setup_models_api

    app.router.add_get("/api/keys", list_keys)
    app.router.add_post("/api/keys", create_key)
    app.router.add_get("/api/keys/{id}", get_key)
    app.router.add_patch("/api/keys/{id}", update_key)
    app.router.add_delete("/api/keys/{id}", delete_key)
    app.router.add_post("/api/keys/{id}/rotate", rotate)
    setup_models_api(app)
