"""Logging: text and JSON-lines formats, X-Request-ID in logs and responses, no secrets logged."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import create_app
from logs import AccessLog, accept_request_id, redact, register_secret, setup_logging
from state.config import parse_config
from tests.conftest import auth_headers, create_test_key
from tests.fake_ollama import FakeOllama

ADMIN_PASSWORD = "Correct-Horse-Battery-9"
SESSION_SECRET = "s3ss10n-s3cr3t-value-for-tests-0123456789abcdef"


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    """Undo setup_logging's changes to the root logger after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    switches = (
        logging._srcfile,
        logging.logThreads,
        logging.logProcesses,
        logging.logMultiprocessing,
    )
    yield
    (logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing) = (
        switches
    )
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


async def _gateway(
    aiohttp_server: Any,
    aiohttp_client: Any,
    fake: FakeOllama,
    tmp_path: Path,
    stream: io.StringIO,
    **overrides: Any,
) -> Any:
    """The real app behind the serve path's access logger, logging into `stream`."""
    config = parse_config("", env={}).replace(
        data_dir=str(tmp_path / "data"),
        ollama_url=fake.url,
        auth="keys",
        admin_password=ADMIN_PASSWORD,
        session_secret=SESSION_SECRET,
        **overrides,
    )
    setup_logging(config, stream=stream)
    server = await aiohttp_server(
        create_app(config),
        access_log_class=AccessLog,
        access_log=logging.getLogger("gateway.access"),
    )
    return await aiohttp_client(server)


def _has_route(app: Any, method: str, path: str) -> bool:
    """True when the app's router has a route for this method and exact path."""
    return any(
        r.method == method and r.resource is not None and r.resource.canonical == path
        for r in app.router.routes()
    )


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("Authorization: Bearer sk-abcdefghijklmnop", "abcdefghijklmnop"),
        ("{'Authorization': 'Bearer sk-Zz9_-Zz9_-Zz9_-Zz9'}", "Zz9_-Zz9_-Zz9_-Zz9"),
        ('{"authorization": "Basic YWRtaW46YWRtaW4="}', "YWRtaW46YWRtaW4="),
        ("key sk-proj_0123456789abcdef was used", "0123456789abcdef"),
        ("password=hunter2hunter2&user=admin", "hunter2hunter2"),
        ('{"password": "p4ss w0rd"}', "p4ss"),
        ("admin_password: letmein99", "letmein99"),
        ("session_secret=abcdef0123456789", "abcdef0123456789"),
        ("Cookie: AIOHTTP_SESSION=gAAAAABsessiondata", "gAAAAABsessiondata"),
        ("csrf_token=tok3n-value-123", "tok3n-value-123"),
        ("metrics_token: m3tr1cs", "m3tr1cs"),
        ("Ollama at http://admin:s3cr3tpw@ollama.lan:11434 is down", "s3cr3tpw"),
        ("proxy https://:0nlyp4ss@host/x", "0nlyp4ss"),
    ],
)
def test_redact_removes_secret_shapes(text: str, leaked: str) -> None:
    out = redact(text)
    assert leaked not in out
    assert "[REDACTED]" in out


@pytest.mark.parametrize(
    "text",
    [
        "POST /v1/chat/completions 200 12.3ms",
        "OpenAI API: http://localhost:3000/v1  (Ollama at http://localhost:11434)",
        "mail admin@example.com about http://host/a@b",
        "model llama3.2:latest answered 42 prompt_tokens and max_tokens: 100",
        "skipping basic setup; task-7 done",
    ],
)
def test_redact_keeps_ordinary_text(text: str) -> None:
    assert redact(text) == text


def test_text_lines_cannot_be_forged(restore_root_logging: None) -> None:
    stream = io.StringIO()
    setup_logging(parse_config("", env={}), stream=stream)
    logging.getLogger("x").warning("unknown model %s", "m\n2026-01-01 INFO gateway [-] fake")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed for\r\nnext")
    lines = stream.getvalue().splitlines()
    assert "fake" in lines[0] and not lines[1].startswith("2026-01-01 INFO")
    assert lines[1].endswith("failed for\\r\\nnext")
    assert lines[2] == "Traceback (most recent call last):"


def test_registered_secret_is_redacted_anywhere() -> None:
    register_secret("plain words secret value")
    assert redact("he said plain words secret value twice") == "he said [REDACTED] twice"


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("abc-123", True),
        ("req_01HZX.4:5", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ("line\nbreak", False),
        ("trailing-newline\n", False),
        ('quote"d', False),
        ("", False),
        (None, False),
    ],
)
def test_accept_request_id(header: str | None, kept: bool) -> None:
    rid = accept_request_id(header)
    assert (rid == header) is kept
    assert 1 <= len(rid) <= 128


async def test_json_lines_with_request_id(
    aiohttp_server: Any,
    aiohttp_client: Any,
    fake_ollama: FakeOllama,
    tmp_path: Path,
    restore_root_logging: None,
) -> None:
    stream = io.StringIO()
    client = await _gateway(
        aiohttp_server,
        aiohttp_client,
        fake_ollama,
        tmp_path,
        stream,
        log_format="json",
        log_level="info",
    )
    sent = await client.get("/v1/models", headers={"X-Request-ID": "trace-me-123"})
    assert sent.headers["X-Request-ID"] == "trace-me-123"
    generated = await client.get("/v1/models")
    rid = generated.headers["X-Request-ID"]
    assert len(rid) >= 16 and rid != "trace-me-123"
    bad = await client.get("/v1/models", headers={"X-Request-ID": "evil\tvalue"})
    assert bad.headers["X-Request-ID"] not in ("evil\tvalue", "")

    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    assert lines, "nothing was logged"
    for entry in lines:
        assert {"ts", "level", "logger", "request_id", "msg"} <= set(entry)
    access = [e for e in lines if e["logger"] == "gateway.access"]
    by_id = {e["request_id"]: e for e in access}
    assert by_id["trace-me-123"]["path"] == "/v1/models"
    assert by_id["trace-me-123"]["status"] == sent.status
    assert by_id["trace-me-123"]["msg"].startswith(f"GET /v1/models {sent.status} ")
    assert rid in by_id


async def test_text_format_has_request_id(
    aiohttp_server: Any,
    aiohttp_client: Any,
    fake_ollama: FakeOllama,
    tmp_path: Path,
    restore_root_logging: None,
) -> None:
    stream = io.StringIO()
    client = await _gateway(aiohttp_server, aiohttp_client, fake_ollama, tmp_path, stream)
    resp = await client.get("/no/such/page", headers={"X-Request-ID": "text-id-42"})
    assert resp.headers["X-Request-ID"] == "text-id-42"
    line = next(ln for ln in stream.getvalue().splitlines() if "[text-id-42]" in ln)
    assert " INFO gateway.access [text-id-42] GET /no/such/page 404 " in line


async def test_request_id_on_stream_and_error_responses(
    aiohttp_server: Any,
    aiohttp_client: Any,
    fake_ollama: FakeOllama,
    tmp_path: Path,
    restore_root_logging: None,
) -> None:
    stream = io.StringIO()
    client = await _gateway(aiohttp_server, aiohttp_client, fake_ollama, tmp_path, stream)
    if not _has_route(client.app, "POST", "/v1/chat/completions"):
        pytest.skip("POST /v1/chat/completions is not registered yet (api engineer's work)")
    secret = create_test_key(client.app)
    body = {"model": "llama3.2", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    resp = await client.post(
        "/v1/chat/completions",
        json=body,
        headers={**auth_headers(secret), "X-Request-ID": "stream-1"},
    )
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert b"data: [DONE]" in await resp.read()
    assert resp.headers["X-Request-ID"] == "stream-1"
    bad = await client.post(
        "/v1/chat/completions",
        data=b"{not json",
        headers={**auth_headers(secret), "X-Request-ID": "bad-1"},
    )
    assert bad.status == 400
    assert bad.headers["X-Request-ID"] == "bad-1"


async def test_no_secret_in_logs(
    aiohttp_server: Any,
    aiohttp_client: Any,
    fake_ollama: FakeOllama,
    tmp_path: Path,
    restore_root_logging: None,
) -> None:
    stream = io.StringIO()
    # debug: the most verbose level must not leak either.
    client = await _gateway(
        aiohttp_server, aiohttp_client, fake_ollama, tmp_path, stream, log_level="debug"
    )
    secret = create_test_key(client.app, name="logged-key")
    headers = auth_headers(secret)
    await client.get("/v1/models", headers=headers)
    await client.post(
        "/v1/chat/completions",
        headers=headers,
        json={"model": "llama3.2", "messages": [{"role": "user", "content": "x"}]},
    )
    await client.post("/v1/chat/completions", headers=headers, json={"model": 5})
    await client.get("/v1/models", headers={"Authorization": f"Bearer {secret}x"})
    await client.get(f"/v1/models?api_key={secret}")
    # Log in to the admin, right and wrong, as a browser form and as JSON.
    for password in (ADMIN_PASSWORD, ADMIN_PASSWORD + "-wrong"):
        await client.post("/admin/login", data={"username": "admin", "password": password})
        await client.post("/admin/api/login", json={"username": "admin", "password": password})
    basic = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    await client.get("/admin/api/session", headers={"Authorization": f"Basic {basic}"})
    # A key made and rotated through the admin API: its secrets travel in response bodies.
    made = await client.post(
        "/admin/api/keys",
        json={"name": "api-made", "models": ["*"]},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert made.status == 201, await made.text()
    api_secret = (await made.json())["key"]
    rotated = await client.post(
        f"/admin/api/keys/{(await made.json())['id']}/rotate",
        headers={"Authorization": f"Basic {basic}"},
    )
    assert rotated.status == 200, await rotated.text()
    new_secret = (await rotated.json())["key"]
    for used in (api_secret, new_secret):
        await client.get("/v1/models", headers=auth_headers(used))
    # A handler that logs what it should not: the redaction filter still catches it.
    logging.getLogger("careless").warning("request headers: %s", dict(headers))
    logging.getLogger("careless").info("login form password=%s", ADMIN_PASSWORD)
    try:
        raise ValueError(f"boom with {secret}")
    except ValueError:
        logging.getLogger("careless").exception("failure")

    output = stream.getvalue()
    assert "careless" in output and "failure" in output and "Traceback" in output
    for value in (
        secret,
        secret[3:],
        ADMIN_PASSWORD,
        SESSION_SECRET,
        basic,
        api_secret,
        new_secret,
    ):
        assert value not in output
