"""Admin JSON API: keys CRUD and rotation, models, settings, bad input, durability."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from appkeys import REGISTRY, UPSTREAM
from state.registry import hash_secret
from tests.conftest import auth_headers
from tests.test_auth import NEW_PW, basic

ADMIN = basic("admin", NEW_PW)


async def admin_gateway(make_gateway: Any, yaml_text: str = "", **kw: Any) -> TestClient:
    """A gateway whose admin password is already changed (scripts use HTTP Basic)."""
    client: TestClient = await make_gateway(yaml_text, admin_password=NEW_PW, **kw)
    return client


async def call(
    client: TestClient, method: str, path: str, body: Any = None, status: int = 200
) -> Any:
    """An admin API call with Basic auth; checks the status, returns the JSON."""
    kw: dict[str, Any] = {"headers": ADMIN}
    if isinstance(body, bytes):
        kw["data"] = body
        kw["headers"] = {**ADMIN, "Content-Type": "application/json"}
    elif body is not None:
        kw["json"] = body
    resp = await client.request(method, path, **kw)
    data = await resp.json()
    assert resp.status == status, (resp.status, data)
    return data


def assert_admin_error(data: Any, field: str | None, text: str = "") -> None:
    """The admin error shape, naming the field."""
    assert set(data) == {"error"}, data
    err = data["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert err.get("field") == field, err
    assert text in err["message"], err


async def test_key_lifecycle(make_gateway: Any) -> None:
    client = await admin_gateway(make_gateway)
    created = await call(
        client,
        "POST",
        "/admin/api/keys",
        {
            "name": "laptop",
            "models": ["llama3.2", "qwen3*"],
            "rpm": 5,
            "expires_at": "2099-01-31T12:00:00Z",
            "notes": "mine",
        },
        201,
    )
    secret = created["key"]
    assert secret.startswith("sk-") and len(secret) >= 35
    assert created["masked"] == f"{secret[:6]}…{secret[-4:]}"
    assert created["models"] == ["llama3.2", "qwen3*"]
    assert created["rpm"] == 5 and created["tpm"] is None
    assert created["expires_at"] == "2099-01-31T12:00:00Z"
    # The secret is never shown again, nor its hash.
    listed = await call(client, "GET", "/admin/api/keys")
    text = json.dumps(listed)
    assert secret not in text and hash_secret(secret) not in text
    assert [k["id"] for k in listed["keys"]] == [created["id"]]
    one = await call(client, "GET", f"/admin/api/keys/{created['id']}")
    assert "key" not in one and one["name"] == "laptop"
    # It is on disk, hashed.
    state = (client.app[REGISTRY].writer.store.path).read_text()  # type: ignore[union-attr]
    assert hash_secret(secret) in state and secret not in state
    # PATCH
    patched = await call(
        client,
        "PATCH",
        f"/admin/api/keys/{created['id']}",
        {"enabled": False, "rpm": None, "notes": "off"},
    )
    assert patched["enabled"] is False and patched["rpm"] is None and patched["notes"] == "off"
    assert client.app[REGISTRY].keys[created["id"]].enabled is False
    # DELETE
    await call(client, "DELETE", f"/admin/api/keys/{created['id']}")
    await call(client, "GET", f"/admin/api/keys/{created['id']}", status=404)
    await call(client, "DELETE", f"/admin/api/keys/{created['id']}", status=404)
    assert client.app[REGISTRY].keys == {}


async def test_expires_at_as_unix_seconds(make_gateway: Any) -> None:
    client = await admin_gateway(make_gateway)
    created = await call(
        client,
        "POST",
        "/admin/api/keys",
        {"name": "a", "models": "*", "expires_at": 4102444800},
        201,
    )
    assert created["expires_at"] == "2100-01-01T00:00:00Z"
    assert created["models"] == ["*"]


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"models": ["*"]}, "name", "required"),
        ({"name": "x"}, "models", "required"),
        ({"name": "", "models": ["*"]}, "name", "must not be empty"),
        ({"name": 5, "models": ["*"]}, "name", "must be a string"),
        ({"name": "x\x00y", "models": ["*"]}, "name", "control characters"),
        ({"name": "x" * 101, "models": ["*"]}, "name", "too long"),
        ({"name": "x", "models": []}, "models", "at least one"),
        ({"name": "x", "models": [1]}, "models", "list of model names"),
        ({"name": "x", "models": ["a b"]}, "models", "not a valid model name"),
        ({"name": "x", "models": ["*"], "rpm": 0}, "rpm", "at least 1"),
        ({"name": "x", "models": ["*"], "tpm": -5}, "tpm", "at least 1"),
        ({"name": "x", "models": ["*"], "max_concurrency": 1.5}, "max_concurrency", "whole"),
        ({"name": "x", "models": ["*"], "rpm": True}, "rpm", "whole number"),
        ({"name": "x", "models": ["*"], "expires_at": "next week"}, "expires_at", "ISO 8601"),
        ({"name": "x", "models": ["*"], "expires_at": True}, "expires_at", "ISO 8601"),
        ({"name": "x", "models": ["*"], "enabled": "yes"}, "enabled", "true or false"),
        ({"name": "x", "models": ["*"], "secret": "sk-mine"}, "secret", "Unknown field"),
    ],
)
async def test_create_key_bad_input(
    make_gateway: Any, body: dict[str, Any], field: str, text: str
) -> None:
    client = await admin_gateway(make_gateway)
    data = await call(client, "POST", "/admin/api/keys", body, 400)
    assert_admin_error(data, field, text)
    assert client.app[REGISTRY].keys == {}


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"{", "not valid JSON"),
        (b"", "empty"),
        (b"[1]", "JSON object"),
        (b"\xff", "not valid"),
    ],
)
async def test_malformed_bodies(make_gateway: Any, raw: bytes, text: str) -> None:
    client = await admin_gateway(make_gateway)
    for method, path in (
        ("POST", "/admin/api/keys"),
        ("PATCH", "/admin/api/settings"),
        ("PATCH", "/admin/api/models/llama3.2"),
    ):
        data = await call(client, method, path, raw, 400)
        assert text in data["error"]["message"]
    assert client.app[REGISTRY].keys == {}


async def test_patch_key_bad_input_changes_nothing(make_gateway: Any) -> None:
    client = await admin_gateway(make_gateway)
    key = await call(client, "POST", "/admin/api/keys", {"name": "a", "models": ["*"]}, 201)
    await call(client, "POST", "/admin/api/keys", {"name": "b", "models": ["*"]}, 201)
    data = await call(
        client, "PATCH", f"/admin/api/keys/{key['id']}", {"name": "renamed", "rpm": "many"}, 400
    )
    assert_admin_error(data, "rpm")
    data = await call(client, "PATCH", f"/admin/api/keys/{key['id']}", {"name": "B"}, 400)
    assert_admin_error(data, "name", "already exists")
    assert client.app[REGISTRY].keys[key["id"]].name == "a"
    await call(client, "PATCH", "/admin/api/keys/nope", {"name": "z"}, 404)
    data = await call(client, "POST", "/admin/api/keys", {"name": "A", "models": ["*"]}, 400)
    assert_admin_error(data, "name", "already exists")


async def test_unknown_route_and_method_are_json(make_gateway: Any) -> None:
    client = await admin_gateway(make_gateway)
    data = await call(client, "GET", "/admin/api/nothing", status=404)
    assert "Unknown admin API route" in data["error"]["message"]
    data = await call(client, "PUT", "/admin/api/keys", status=405)
    assert "not allowed" in data["error"]["message"]


async def test_rotation_grace(make_gateway: Any) -> None:
    client = await admin_gateway(make_gateway, key_rotation_grace=3600)
    key = await call(client, "POST", "/admin/api/keys", {"name": "a", "models": ["*"]}, 201)
    old = key["key"]
    rotated = await call(client, "POST", f"/admin/api/keys/{key['id']}/rotate")
    new = rotated["key"]
    assert new != old and rotated["masked"] != key["masked"]
    assert rotated["previous_secret_valid_until"] is not None
    registry = client.app[REGISTRY]
    assert registry.authenticate(old).id == key["id"]
    assert registry.authenticate(new).id == key["id"]
    # After the grace period only the new secret works.
    later = time.time() + 3601
    assert registry.authenticate(new, now=later).id == key["id"]
    with pytest.raises(Exception, match="no such key"):
        registry.authenticate(old, now=later)
    # The grace secret survives a restart (the by-hash index includes it).
    await client.close()
    client2 = await admin_gateway(make_gateway, key_rotation_grace=3600)
    assert client2.app[REGISTRY].authenticate(old).id == key["id"]
    resp = await client2.get("/v1/models", headers=auth_headers(old))
    assert resp.status == 200


async def test_rotation_without_grace(make_gateway: Any) -> None:
    client = await admin_gateway(make_gateway, key_rotation_grace=0)
    key = await call(client, "POST", "/admin/api/keys", {"name": "a", "models": ["*"]}, 201)
    await call(client, "POST", f"/admin/api/keys/{key['id']}/rotate")
    resp = await client.get("/v1/models", headers=auth_headers(key["key"]))
    assert resp.status == 401


async def test_revoked_key_refused_on_next_request(make_gateway: Any) -> None:
    client = await admin_gateway(make_gateway)
    a = await call(client, "POST", "/admin/api/keys", {"name": "a", "models": ["*"]}, 201)
    b = await call(client, "POST", "/admin/api/keys", {"name": "b", "models": ["*"]}, 201)
    assert (await client.get("/v1/models", headers=auth_headers(a["key"]))).status == 200
    await call(client, "DELETE", f"/admin/api/keys/{a['id']}")
    resp = await client.get("/v1/models", headers=auth_headers(a["key"]))
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "invalid_api_key"
    assert (await client.get("/v1/models", headers=auth_headers(b["key"]))).status == 200
    await call(client, "PATCH", f"/admin/api/keys/{b['id']}", {"enabled": False})
    resp = await client.get("/v1/models", headers=auth_headers(b["key"]))
    assert resp.status == 401
    assert "disabled" in (await resp.json())["error"]["message"]


async def test_200_concurrent_creations_survive_restart(make_gateway: Any) -> None:
    client = await admin_gateway(make_gateway)
    results = await asyncio.gather(
        *(
            call(client, "POST", "/admin/api/keys", {"name": f"k{i}", "models": ["*"]}, 201)
            for i in range(200)
        )
    )
    ids = {r["id"] for r in results}
    assert len(ids) == 200
    await client.close()
    client2 = await admin_gateway(make_gateway)
    listed = await call(client2, "GET", "/admin/api/keys")
    assert {k["id"] for k in listed["keys"]} == ids
    for r in results[:5]:
        assert client2.app[REGISTRY].authenticate(r["key"]).id == r["id"]


async def test_hot_counters_saved_debounced_and_at_shutdown(make_gateway: Any) -> None:
    client = await admin_gateway(make_gateway)
    key = await call(client, "POST", "/admin/api/keys", {"name": "a", "models": ["*"]}, 201)
    registry = client.app[REGISTRY]
    store = registry.writer.store  # type: ignore[union-attr]
    before = store.stamp()
    k = registry.authenticate(key["key"])
    for _ in range(5):
        registry.touch(k)
    assert registry.keys[key["id"]].request_count == 5
    assert store.stamp() == before  # not written on every request
    await client.close()  # flushed at shutdown
    doc = json.loads(store.path.read_text())
    saved = next(x for x in doc["keys"] if x["id"] == key["id"])
    assert saved["request_count"] == 5 and saved["last_used_at"] is not None


async def test_models_list_patch_and_validation(make_gateway: Any, fake_ollama: Any) -> None:
    yaml_text = (
        "models:\n  qwen3:8b:\n    display_name: qwen-chat\n    overrides: {temperature: 0.2}\n"
    )
    client = await admin_gateway(make_gateway, yaml_text)
    data = await call(client, "GET", "/admin/api/models")
    assert data["error"] is None
    by_name = {m["ollama_name"]: m for m in data["models"]}
    assert set(by_name) >= {"llama3.2:latest", "qwen3:8b", "llava:7b"}
    qwen = by_name["qwen3:8b"]
    assert qwen["display_name"] == "qwen-chat" and qwen["locked"] == ["display_name"]
    assert qwen["overrides"] == {"temperature": {"value": 0.2, "source": "config"}}
    assert "thinking" in qwen["capabilities"] and qwen["context_length"] == 40960
    # A good PATCH
    out = await call(
        client,
        "PATCH",
        "/admin/api/models/llama3.2",
        {
            "display_name": "Llama",
            "overrides": {"num_ctx": 8192, "think": "low"},
            "enforce": {"temperature": 0},
        },
    )
    assert out["ollama_name"] == "llama3.2:latest" and out["display_name"] == "Llama"
    assert out["overrides"]["num_ctx"] == {"value": 8192, "source": "ui"}
    assert out["enforce"] == {"temperature": {"value": 0.0, "source": "ui"}}
    eff = client.app[REGISTRY].model_settings("LLAMA3.2:latest")
    assert eff.overrides == {"num_ctx": 8192, "think": "low"}
    # Bad values: 400 naming the option, nothing saved.
    for body, field in [
        ({"overrides": {"temperature": "hot"}}, "overrides.temperature"),
        ({"overrides": {"num_ctx": 1.5}}, "overrides.num_ctx"),
        ({"overrides": {"bogus": 1}}, "overrides.bogus"),
        ({"enforce": {"think": "very"}}, "enforce.think"),
        ({"overrides": []}, "overrides."),
        ({"enabled": "no"}, "enabled"),
        ({"reasoning_output": "loud"}, "reasoning_output"),
        ({"display_name": "x\ny"}, "display_name"),
        ({"display_name": "qwen-chat"}, "display_name"),
        ({"display_name": "llava:7b"}, "display_name"),
        ({"colour": "red"}, "colour"),
    ]:
        data = await call(
            client, "PATCH", "/admin/api/models/llama3.2", {"display_name": "Changed", **body}, 400
        )
        assert data["error"]["field"].rstrip(".") == field.rstrip("."), (body, data)
    assert client.app[REGISTRY].model_settings("llama3.2").display_name == "Llama"
    # config.yaml wins and is locked; sending its own value back is fine.
    data = await call(client, "PATCH", "/admin/api/models/qwen3:8b", {"display_name": "other"}, 400)
    assert "config.yaml" in data["error"]["message"]
    data = await call(
        client, "PATCH", "/admin/api/models/qwen3:8b", {"overrides": {"temperature": 0.9}}, 400
    )
    assert data["error"]["field"] == "overrides.temperature"
    out = await call(
        client,
        "PATCH",
        "/admin/api/models/qwen3:8b",
        {"display_name": "qwen-chat", "overrides": {"temperature": 0.2, "top_k": 5}},
    )
    assert out["overrides"] == {
        "temperature": {"value": 0.2, "source": "config"},
        "top_k": {"value": 5, "source": "ui"},
    }
    # Clearing: null display name, empty blocks.
    out = await call(
        client,
        "PATCH",
        "/admin/api/models/llama3.2",
        {"display_name": None, "overrides": {}, "enforce": {}},
    )
    assert out["display_name"] is None and out["overrides"] == {}
    assert "llama3.2:latest" not in client.app[REGISTRY].model_state


async def test_disabled_model_not_callable(make_gateway: Any) -> None:
    client = await admin_gateway(make_gateway)
    key = await call(client, "POST", "/admin/api/keys", {"name": "a", "models": ["*"]}, 201)
    await call(client, "PATCH", "/admin/api/models/llava:7b", {"enabled": False})
    body = {"model": "llava:7b", "messages": [{"role": "user", "content": "hi"}]}
    resp = await client.post("/v1/chat/completions", json=body, headers=auth_headers(key["key"]))
    assert resp.status == 404, await resp.text()
    assert (await resp.json())["error"]["code"] == "model_not_found"
    models = await (await client.get("/v1/models", headers=auth_headers(key["key"]))).json()
    assert "llava:7b" not in {m["id"] for m in models["data"]}
    data = await call(client, "GET", "/admin/api/models")
    assert {m["ollama_name"]: m["enabled"] for m in data["models"]}["llava:7b"] is False


async def test_models_refresh_and_unreachable_ollama(make_gateway: Any, fake_ollama: Any) -> None:
    from tests.fake_ollama import FakeModel

    client = await admin_gateway(make_gateway)
    await call(client, "GET", "/admin/api/models")
    fake_ollama.models.append(FakeModel("mistral:7b"))
    data = await call(client, "POST", "/admin/api/models/refresh")
    assert "mistral:7b" in {m["ollama_name"] for m in data["models"]}
    client.app[UPSTREAM].set_base_url("http://127.0.0.1:9")
    client.app[REGISTRY].settings_state["model_cache_ttl"] = 0
    data = await call(client, "POST", "/admin/api/models/refresh", status=502)
    assert "127.0.0.1:9" in data["error"]["message"]


async def test_settings_get_patch_locked(make_gateway: Any, fake_ollama: Any) -> None:
    client = await admin_gateway(make_gateway, "reasoning_output: hidden\n")
    data = await call(client, "GET", "/admin/api/settings")
    by = {s["name"]: s for s in data["settings"]}
    assert "port" not in by and "admin_password" not in by
    assert by["reasoning_output"]["locked"] is True and by["reasoning_output"]["value"] == "hidden"
    assert by["key_rotation_grace"]["source"] == "default"
    out = await call(
        client,
        "PATCH",
        "/admin/api/settings",
        {"key_rotation_grace": 60, "defaults": {"temperature": 0.5}, "content_logging": True},
    )
    by = {s["name"]: s for s in out["settings"]}
    assert by["key_rotation_grace"] == {**by["key_rotation_grace"], "value": 60, "source": "ui"}
    assert client.app[REGISTRY].setting("defaults") == {"temperature": 0.5}
    # Locked by config.yaml: refused unless unchanged.
    data = await call(client, "PATCH", "/admin/api/settings", {"reasoning_output": "both"}, 400)
    assert_admin_error(data, "reasoning_output", "config.yaml")
    await call(client, "PATCH", "/admin/api/settings", {"reasoning_output": "hidden"})
    for body, field in [
        ({"port": 1}, "port"),
        ({"nope": 1}, "nope"),
        ({"key_rotation_grace": "1h"}, "key_rotation_grace"),
        ({"key_rotation_grace": -1}, "key_rotation_grace"),
        ({"content_logging": "yes"}, "content_logging"),
        ({"defaults": {"top_k": "x"}}, "defaults.top_k"),
        ({"defaults": 3}, "defaults"),
        ({"ollama_url": "ftp://x"}, "ollama_url"),
    ]:
        data = await call(
            client, "PATCH", "/admin/api/settings", {"usage_retention_days": 5, **body}, 400
        )
        assert_admin_error(data, field)
    assert client.app[REGISTRY].setting("usage_retention_days") == 90  # nothing half-saved
    # null returns a setting to its default
    await call(client, "PATCH", "/admin/api/settings", {"key_rotation_grace": None})
    assert client.app[REGISTRY].setting("key_rotation_grace") == 86400


async def test_ollama_url_setting_moves_upstream(make_gateway: Any, fake_ollama: Any) -> None:
    client = await admin_gateway(make_gateway)
    registry = client.app[REGISTRY]
    data = await call(client, "GET", "/admin/api/settings")
    assert {s["name"]: s for s in data["settings"]}["ollama_url"]["locked"] is True
    # The fixture sets ollama_url explicitly; as if config.yaml left it to the admin:
    registry.config = dataclasses.replace(
        registry.config, explicit=registry.config.explicit - {"ollama_url"}
    )
    await call(client, "PATCH", "/admin/api/settings", {"ollama_url": "http://127.0.0.1:9/"})
    assert client.app[UPSTREAM].base_url == "http://127.0.0.1:9"
    assert registry.setting("ollama_url") == "http://127.0.0.1:9"
    await call(client, "PATCH", "/admin/api/settings", {"ollama_url": fake_ollama.url})
    assert client.app[UPSTREAM].base_url == fake_ollama.url


async def test_test_ollama(make_gateway: Any, fake_ollama: Any) -> None:
    client = await admin_gateway(make_gateway)
    ok = await call(client, "POST", "/admin/api/settings/test-ollama")
    assert ok["ok"] is True and ok["version"] and ok["url"] == fake_ollama.url
    ok = await call(
        client, "POST", "/admin/api/settings/test-ollama", {"ollama_url": fake_ollama.url + "/"}
    )
    assert ok["ok"] is True
    bad = await call(
        client, "POST", "/admin/api/settings/test-ollama", {"ollama_url": "http://127.0.0.1:9"}
    )
    assert (
        bad["ok"] is False
        and "Cannot reach Ollama at http://127.0.0.1:9" in bad["error"]["message"]
    )
    data = await call(client, "POST", "/admin/api/settings/test-ollama", {"ollama_url": "x"}, 400)
    assert_admin_error(data, "ollama_url")


async def test_disk_failure_changes_nothing(make_gateway: Any, monkeypatch: Any) -> None:
    client = await admin_gateway(make_gateway)
    await call(client, "POST", "/admin/api/keys", {"name": "a", "models": ["*"]}, 201)
    store = client.app[REGISTRY].writer.store  # type: ignore[union-attr]

    def full(doc: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "write", full)
    data = await call(client, "POST", "/admin/api/keys", {"name": "b", "models": ["*"]}, 503)
    assert "No space left on device" in data["error"]["message"]
    assert [k.name for k in client.app[REGISTRY].keys.values()] == ["a"]
    monkeypatch.undo()
    await call(client, "POST", "/admin/api/keys", {"name": "b", "models": ["*"]}, 201)


async def test_patch_model_with_slash_in_name(make_gateway: Any) -> None:
    client = await admin_gateway(make_gateway)
    out = await call(
        client,
        "PATCH",
        "/admin/api/models/hf.co%2Forg%2Fcoder:Q4_K_M",
        {"overrides": {"num_ctx": 4096}},
    )
    assert out["ollama_name"] == "hf.co/org/coder:q4_k_m" and out["available"] is True
    assert client.app[REGISTRY].model_settings("hf.co/org/coder:Q4_K_M").overrides == {
        "num_ctx": 4096
    }
