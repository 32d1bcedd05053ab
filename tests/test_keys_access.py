"""Keys on /v1: allowlist by resolved model (no bypass by name variants), limits, auth: none."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import openai
import pytest

from appkeys import REGISTRY
from tests.conftest import auth_headers, create_test_key, read_openai_error
from tests.fake_ollama import Script

YAML = "models:\n  qwen3:8b:\n    display_name: Qwen-Chat\n  llama3.2:\n    display_name: Llama\n"


def chat_body(model: str, stream: bool = False) -> dict[str, Any]:
    """A minimal chat request."""
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("allowed", "model", "ok"),
    [
        # Every spelling of an allowed model works ...
        (["llama3.2"], "llama3.2", True),
        (["llama3.2"], "llama3.2:latest", True),
        (["llama3.2"], "LLAMA3.2", True),
        (["llama3.2"], "Llama", True),  # its display name
        (["llama3.2:latest"], "llama3.2", True),
        (["Llama"], "llama3.2:latest", True),  # allowlisted by display name
        (["qwen3*"], "qwen-chat", True),
        (["qwen3*"], "Qwen-Chat:latest", True),  # a display name with the default tag
        # ... and no spelling of another model gets through.
        (["llama3.2"], "qwen3:8b", False),
        (["llama3.2"], "QWEN3:8B", False),
        (["llama3.2"], "Qwen-Chat", False),  # display name of a forbidden model
        (["llama3.2"], "qwen-chat", False),
        (["llama3.2"], "qwen-chat:latest", False),
        (["llama3.2"], "qwen3", False),  # qwen3:latest does not exist
        (["llama3.2"], "llama3.2:8b", False),
        (["qwen3*"], "Llama", False),
        (["qwen3*"], "llama3.2", False),
        (["Qwen-Chat"], "llava:7b", False),
        (["llama3.2"], "hf.co/org/coder:Q4_K_M", False),
    ],
)
async def test_allowlist_by_resolved_model(
    make_gateway: Any, allowed: list[str], model: str, ok: bool
) -> None:
    client = await make_gateway(YAML)
    secret = create_test_key(client.app, "k", allowed)
    resp = await client.post(
        "/v1/chat/completions", json=chat_body(model), headers=auth_headers(secret)
    )
    if ok:
        assert resp.status == 200, await resp.text()
    else:
        err = await read_openai_error(resp, 404, "model_not_found", "model")
        assert model in err["message"]  # the same answer as for a model that does not exist


async def test_models_list_only_what_the_key_may_use(make_gateway: Any) -> None:
    client = await make_gateway(YAML)
    secret = create_test_key(client.app, "k", ["llama3.2", "llava*"])
    resp = await client.get("/v1/models", headers=auth_headers(secret))
    ids = {m["id"] for m in (await resp.json())["data"]}
    assert ids == {"Llama", "llava:7b"}
    for hidden in ("qwen3:8b", "Qwen-Chat"):
        resp = await client.get(f"/v1/models/{hidden}", headers=auth_headers(secret))
        await read_openai_error(resp, 404, "model_not_found")


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ({}, "Missing API key"),
        ({"header": "Bearer sk-unknown-0123456789012345678901234567890"}, "no such key"),
        ({"enabled": False}, "disabled"),
        ({"expires_at": 1.0}, "expired"),
    ],
)
async def test_key_refusals_say_why(make_gateway: Any, setup: dict[str, Any], reason: str) -> None:
    client = await make_gateway()
    fields = {k: v for k, v in setup.items() if k != "header"}
    secret = create_test_key(client.app, "k", ["*"], **fields)
    headers = (
        {"Authorization": setup["header"]}
        if "header" in setup
        else auth_headers(secret)
        if fields
        else {}
    )
    resp = await client.get("/v1/models", headers=headers)
    err = await read_openai_error(resp, 401, "invalid_api_key")
    assert reason in err["message"]
    assert secret not in err["message"] and "sk-unknown" not in err["message"]


async def test_rpm_limit_via_sdk(make_gateway: Any) -> None:
    client = await make_gateway()
    secret = create_test_key(client.app, "k", ["*"], rpm=2)
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=secret, max_retries=0)
    try:
        for n in range(2):
            raw = await sdk.chat.completions.with_raw_response.create(
                model="llama3.2", messages=[{"role": "user", "content": "hi"}]
            )
            assert raw.headers["x-ratelimit-limit-requests"] == "2"
            assert raw.headers["x-ratelimit-remaining-requests"] == str(1 - n)
        with pytest.raises(openai.RateLimitError) as info:
            await sdk.chat.completions.create(
                model="llama3.2", messages=[{"role": "user", "content": "hi"}]
            )
        headers = info.value.response.headers
        assert int(headers["Retry-After"]) >= 1
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert headers["x-ratelimit-reset-requests"].endswith("s")
        assert info.value.code == "rate_limit_exceeded"
    finally:
        await sdk.close()


async def test_concurrency_limit_with_streams(make_gateway: Any, fake_ollama: Any) -> None:
    client = await make_gateway()
    fake_ollama.always(
        "chat", Script(lines=[{"message": {"content": w}} for w in "abcdef"], delay=0.05)
    )
    secret = create_test_key(client.app, "k", ["*"], max_concurrency=2)

    async def one() -> int:
        resp = await client.post(
            "/v1/chat/completions", json=chat_body("llama3.2", True), headers=auth_headers(secret)
        )
        await resp.read()
        return resp.status

    statuses = await asyncio.gather(*(one() for _ in range(6)))
    assert statuses.count(200) == 2 and statuses.count(429) == 4
    # Slots are released when the streams end.
    assert await one() == 200


async def test_tpm_counts_streamed_tokens(make_gateway: Any, fake_ollama: Any) -> None:
    client = await make_gateway()
    # Each streamed reply reports 30 prompt + 30 completion tokens in its final line.
    fake_ollama.always(
        "chat",
        Script(
            lines=[{"message": {"content": "x"}}],
            metrics={"prompt_eval_count": 30, "eval_count": 30},
        ),
    )
    secret = create_test_key(client.app, "k", ["*"], tpm=100)
    for _ in range(2):  # 60, then 120 tokens used
        resp = await client.post(
            "/v1/chat/completions", json=chat_body("llama3.2", True), headers=auth_headers(secret)
        )
        assert resp.status == 200
        await resp.read()
    resp = await client.post(
        "/v1/chat/completions", json=chat_body("llama3.2", True), headers=auth_headers(secret)
    )
    err = await read_openai_error(resp, 429, "rate_limit_exceeded")
    assert "tokens per minute" in err["message"]
    assert resp.headers["x-ratelimit-remaining-tokens"] == "0"


async def test_request_count_and_last_used(make_gateway: Any) -> None:
    client = await make_gateway()
    secret = create_test_key(client.app, "k", ["*"])
    for _ in range(3):
        assert (await client.get("/v1/models", headers=auth_headers(secret))).status == 200
    [key] = client.app[REGISTRY].keys.values()
    assert key.request_count == 3 and key.last_used_at is not None


async def test_auth_none_is_logged_loudly(make_gateway: Any, caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, logger="state"):
        client = await make_gateway("auth: none\n")
    assert any(
        "auth: none" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records
    )
    resp = await client.post("/v1/chat/completions", json=chat_body("llama3.2"))
    assert resp.status == 200
