"""Shared fixtures: a fake Ollama, the real gateway in front of it, key and error helpers.

Fixtures (stable; other test modules rely on them):

- `fake_ollama`: a started `tests.fake_ollama.FakeOllama` on 127.0.0.1. Attributes: `.url`,
  `.requests` (list of Recorded(method, path, body, headers)), `.bodies(path)`, `.last(path)`,
  `.models` (list of FakeModel; edit before the gateway discovers them), `.push(kind, Script)`,
  `.always(kind, Script)`, `.disconnects`, `await .wait_disconnect()`. See that module.
- `make_gateway`: `client = await make_gateway(yaml_text="", **config_overrides)` returns a
  started aiohttp TestClient of `gateway.create_app(config)` on a real 127.0.0.1 port, where
  config = parse_config(yaml_text, env={}) with ollama_url pointing at `fake_ollama`,
  data_dir in tmp_path and `auth: keys`, then `config_overrides` applied. `client.app` is the app;
  `client.make_url("/v1")` is a base_url for the openai SDK.

Helpers (import from tests.conftest):

- `create_test_key(app, name="test", models=("*",), **fields) -> str`: a key made directly
  through the registry; returns its secret.
- `auth_headers(secret) -> dict`: the Authorization header for a secret.
- `assert_openai_error(body, status, code, param=ANY)`: checks OpenAI's error shape
  `{"error": {"message", "type", "param", "code"}}`, that `code` matches, and that `type`
  fits the status.
- `await read_openai_error(resp, status, code, param=ANY) -> dict`: checks the status too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from appkeys import REGISTRY
from gateway import create_app
from state.config import parse_config
from tests.fake_ollama import FakeOllama

ANY: Any = object()

_TYPE_FOR_STATUS = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


@pytest.fixture
async def fake_ollama(aiohttp_server: Any) -> FakeOllama:
    """A fake Ollama, started on 127.0.0.1."""
    fake = FakeOllama()
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


MakeGateway = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def make_gateway(aiohttp_client: Any, fake_ollama: FakeOllama, tmp_path: Path) -> MakeGateway:
    """Factory: `await make_gateway(yaml_text="", **config_overrides)` -> started TestClient."""

    async def factory(yaml_text: str = "", **overrides: Any) -> TestClient:
        config = parse_config(yaml_text, env={})
        base = {"data_dir": str(tmp_path / "data")}
        if "ollama_url" not in config.explicit:
            base["ollama_url"] = fake_ollama.url
        config = config.replace(**{**base, **overrides})
        client: TestClient = await aiohttp_client(create_app(config))
        return client

    return factory


def create_test_key(app: Any, name: str = "test", models: Any = ("*",), **fields: Any) -> str:
    """Create an API key directly through the registry; return its secret."""
    result = app[REGISTRY].create_key(name, list(models), **fields)
    secret = result[1] if isinstance(result, tuple) else result
    assert isinstance(secret, str)
    return secret


def auth_headers(secret: str) -> dict[str, str]:
    """The Authorization header for a key secret."""
    return {"Authorization": f"Bearer {secret}"}


def assert_openai_error(body: Any, status: int, code: str | None, param: Any = ANY) -> None:
    """Assert OpenAI's error shape, the code, a type that fits the status, and the param."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"], err
    assert err["code"] == code, err
    expected_type = _TYPE_FOR_STATUS.get(status, "server_error" if status >= 500 else None)
    if expected_type is not None:
        assert err["type"] == expected_type, err
    if param is not ANY:
        assert err["param"] == param, err


async def read_openai_error(
    resp: ClientResponse, status: int, code: str | None, param: Any = ANY
) -> dict[str, Any]:
    """Check a response's status and OpenAI error body; return the `error` object."""
    body = await resp.json()
    assert resp.status == status, (resp.status, body)
    assert_openai_error(body, status, code, param)
    return body["error"]
