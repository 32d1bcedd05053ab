"""The docs cannot drift: README and config.yaml are checked against the code."""

from __future__ import annotations

import ast
import asyncio
import base64
import json
import re
import shlex
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import create_app
from state.config import SETTINGS, SETTINGS_BY_NAME, Config, parse_config

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
CONFIG_YAML = (ROOT / "config.yaml").read_text()
RUN_COMMAND = "pip install -r requirements.txt && python gateway.py"
SOURCES = [
    ROOT / "gateway.py",
    ROOT / "logs.py",
    *[p for pkg in ("api", "state", "web") for p in sorted((ROOT / pkg).rglob("*.py"))],
]


def section(title: str) -> str:
    """The text of one `## title` section of the README."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def code_blocks(lang: str | None = None) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block, optionally of one language."""
    # Fences may be indented (a block inside a list item); the body is dedented to match.
    blocks = re.findall(r"^( *)```(\w*)\n(.*?)^\1```", README, re.M | re.S)
    return [(lg, textwrap.dedent(body)) for _, lg, body in blocks if lang is None or lg == lang]


def reference_rows() -> list[list[str]]:
    """The configuration reference table's rows, as cell lists."""
    rows = []
    for line in section("Configuration reference").splitlines():
        if line.startswith("| `"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def documented_default(setting: Any) -> str:
    """How a default is written in the reference table."""
    value = setting.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{json.dumps(value)}`"
    return f"`{value}`"


def test_reference_has_one_row_per_setting() -> None:
    names = [row[0].strip("`") for row in reference_rows()]
    assert sorted(names) == sorted(s.name for s in SETTINGS)
    assert len(names) == len(set(names)), "a setting is documented twice"
    # Same order as the table in state/config.py, so the two read alike.
    assert names == [s.name for s in SETTINGS]


@pytest.mark.parametrize("row", reference_rows(), ids=lambda r: r[0].strip("`"))
def test_reference_row_matches_the_code(row: list[str]) -> None:
    name, env, default, admin, description = row
    setting = SETTINGS_BY_NAME[name.strip("`")]
    assert env == (f"`{setting.env}`" if setting.env else "")
    assert default == documented_default(setting)
    assert admin == ("yes" if setting.admin else "")
    assert len(description) > 10
    for choice in setting.choices:
        assert f"`{choice}`" in description, f"{name}: choice {choice} is not documented"


def test_restart_only_settings_are_listed() -> None:
    from state.reload import RESTART_SETTINGS

    match = re.search(r"Settings read only at start[^:]*:\n?(.*?)\n\n", README, re.S)
    assert match
    listed = re.findall(r"`(\w+)`", match.group(1))
    assert sorted(listed) == sorted(RESTART_SETTINGS)


def test_env_vars_named_in_the_docker_section_exist() -> None:
    envs = {s.env for s in SETTINGS if s.env}
    named = set(re.findall(r"`([A-Z][A-Z_]+)`", section("Docker")))
    assert named, "the Docker section names no environment variables"
    assert named <= envs, named - envs
    assert {"PORT", "OLLAMA_URL", "DATA_DIR", "SESSION_SECRET", "ADMIN_PASSWORD"} <= named


def test_exactly_two_setup_commands_and_ci_runs_the_test_one() -> None:
    ci_lines = [
        ln
        for ln in (ROOT / ".ci/run").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    test_command = ci_lines[-1].strip()
    assert "pytest" in test_command and "requirements-dev.txt" in test_command
    shell_lines = [ln.strip() for lang, body in code_blocks("sh") for ln in body.splitlines()]
    installs = [ln for ln in shell_lines if "pip install" in ln]
    assert installs == [RUN_COMMAND, test_command]
    assert ci_lines[:2] == ["set -euo pipefail", 'cd "$(dirname "$0")/.."']
    # Besides the test command, CI only installs Debian's Chromium for the browser tests.
    assert "apt-get install -y -q chromium" in "\n".join(ci_lines[2:-1])
    for tool in ("ruff check .", "ruff format --check .", "mypy", "python -m pytest"):
        assert tool in test_command, tool


def test_readme_run_command_starts_with_the_default_config() -> None:
    # `python gateway.py` loads ./config.yaml when present; the shipped one must mean defaults.
    assert parse_config(CONFIG_YAML, "config.yaml", env={}) == Config(path="config.yaml")


def test_config_yaml_documents_every_setting_with_its_default() -> None:
    all_lines = CONFIG_YAML.splitlines()
    for setting in SETTINGS:
        # (the commented examples start right after a "# Example:" line)
        lines = [
            ln
            for i, ln in enumerate(all_lines)
            if re.match(rf"^# {setting.name}:", ln) and all_lines[i - 1] != "# Example:"
        ]
        assert len(lines) == 1, f"config.yaml: expected one '# {setting.name}:' line"
        # Uncommented alone, the line must give the built-in default.
        one = parse_config(lines[0][2:], env={})
        assert getattr(one, setting.name) == (
            setting.default if setting.name != "models" else {}
        ), setting.name
        if setting.env:
            block = CONFIG_YAML.split(lines[0])[0].rsplit("\n\n", 1)[-1]
            assert f"env {setting.env}" in block, f"config.yaml: {setting.name} env not named"


def test_config_yaml_examples_are_valid() -> None:
    """The commented `defaults:` and `models:` examples parse when uncommented."""
    for key in ("defaults", "models"):
        lines = CONFIG_YAML.splitlines()
        start = lines.index(
            "# Example:", next(i for i, ln in enumerate(lines) if ln.startswith(f"# {key}: "))
        )
        block = []
        for ln in lines[start + 1 :]:
            if not ln.startswith("#") or ln == "#":
                break
            block.append(ln[2:])
        config = parse_config("\n".join(block), env={})
        assert getattr(config, key), f"the {key} example is empty"
        if key == "models":
            qwen = config.models["qwen3:8b"]
            assert qwen.display_name == "qwen-fast" and qwen.enforce["num_ctx"] == 16384
            assert qwen.reasoning_output == "inline"


@pytest.mark.parametrize(
    "body", [b for _, b in code_blocks("python")], ids=lambda b: b.splitlines()[0][:40]
)
def test_python_examples_compile(body: str) -> None:
    ast.parse(body)


@pytest.mark.parametrize("body", [b for _, b in code_blocks("json")])
def test_json_examples_parse(body: str) -> None:
    json.loads(body)


def _curl_payloads() -> list[str]:
    """The -d payloads of the README's curl examples."""
    payloads = []
    for _, body in code_blocks("sh"):
        if "curl" not in body:
            continue
        words = shlex.split(body.replace("\\\n", " "))
        payloads += [words[i + 1] for i, w in enumerate(words) if w == "-d"]
    return payloads


@pytest.mark.parametrize("payload", _curl_payloads())
def test_curl_payloads_are_json(payload: str) -> None:
    body = json.loads(payload)
    assert isinstance(body, dict) and body


def test_every_example_language_is_present() -> None:
    """Chat, streaming, reasoning, tools, extra_body options and embeddings, three ways each."""
    api = section("API reference")
    for title in (
        "Chat",
        "Streaming",
        "Reasoning",
        "Tools",
        "Ollama options (`extra_body`)",
        "Embeddings",
    ):
        match = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^### |\Z)", api, re.M | re.S)
        assert match, title
        langs = re.findall(r"^```(\w+)", match.group(1), re.M)
        assert {"sh", "python", "js"} <= set(langs), (title, langs)


def test_api_routes_in_the_readme_exist(tmp_path: Path) -> None:
    app = create_app(parse_config("", env={}).replace(data_dir=str(tmp_path)))
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    documented = re.findall(r"^\| `(GET|POST) (/v1/[^`]*)`", section("API reference"), re.M)
    assert len(documented) >= 5
    for method, path in documented:
        canonical = re.sub(r"\{id\}", "{model}", path)
        assert (
            (method, path) in routes
            or (method, canonical) in routes
            or any(
                m == method and re.sub(r"\{[^}]+\}", "{}", p) == re.sub(r"\{[^}]+\}", "{}", path)
                for m, p in routes
            )
        ), f"{method} {path} is documented but not routed"


def _source_text() -> str:
    """All server source code, for message lookups."""
    return "\n".join(p.read_text() for p in SOURCES)


def troubleshooting_messages() -> list[str]:
    """The quoted messages that head the troubleshooting entries."""
    return re.findall(r"^### `([^`]+)`", section("Troubleshooting"), re.M)


@pytest.mark.parametrize("message", troubleshooting_messages())
def test_troubleshooting_quotes_real_messages(message: str) -> None:
    source = _source_text()
    fragments = [f.strip() for f in message.split("…") if len(f.strip()) >= 4]
    assert fragments, message
    for fragment in fragments:
        assert fragment in source, f"'{fragment}' is not in the gateway's code"


def test_troubleshooting_covers_the_main_failures() -> None:
    messages = " ".join(troubleshooting_messages())
    for needed in (
        "Cannot reach Ollama",
        "Missing API key",
        "Invalid API key",
        "does not exist or you do not have access",
        "not valid JSON",
        "unknown setting",
        "cannot listen",
    ):
        assert needed in messages, needed


def test_screenshot_links_point_at_files() -> None:
    links = re.findall(r"\]\((docs/screenshots/[^)]+\.png)\)", section("Screenshots"))
    assert links
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert not missing, f"screenshots not found: {missing}"


def test_bench_readme_command_runs_the_script() -> None:
    assert "python bench/bench_gateway.py" in README
    assert (ROOT / "bench" / "bench_gateway.py").is_file()


def test_yaml_in_readme_parses() -> None:
    for _, body in code_blocks("yaml"):
        yaml.safe_load(body)


def _api_block(title: str, lang: str) -> str:
    """The one `lang` code block under `### title` in the API reference."""
    api = section("API reference")
    match = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^### |\Z)", api, re.M | re.S)
    assert match, title
    (body,) = re.findall(rf"^```{lang}\n(.*?)^```", match.group(1), re.M | re.S)
    return str(body)


async def test_python_examples_run_against_the_gateway(
    make_gateway: Any, fake_ollama: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import create_test_key
    from tests.fake_ollama import Script, text_script, tool_call

    client = await make_gateway()
    monkeypatch.setenv("OPENAI_BASE_URL", str(client.make_url("/v1")))
    monkeypatch.setenv("OPENAI_API_KEY", create_test_key(client.app))
    printed: list[str] = []
    ns: dict[str, Any] = {"print": lambda *a, **k: printed.append(" ".join(map(str, a)))}

    async def run(title: str) -> None:
        await asyncio.to_thread(exec, compile(_api_block(title, "python"), title, "exec"), ns)

    try:
        await run("Chat")
        assert ns["reply"].choices[0].message.content.startswith("Echo:")
        await run("Streaming")
        assert "".join(printed[1:]).startswith("Echo:")
        await run("Reasoning")
        assert "Thinking about" in ns["message"].reasoning_content
        assert fake_ollama.last("/api/chat")["think"] == "high"
        fake_ollama.push(
            "chat",
            Script(
                lines=[
                    {
                        "message": {
                            "content": "",
                            "tool_calls": [tool_call("get_weather", {"city": "Tokyo"})],
                        }
                    }
                ]
            ),
            text_script("It is sunny in Tokyo."),
        )
        await run("Tools")
        assert ns["args"] == {"city": "Tokyo"}
        assert ns["final"].choices[0].message.content == "It is sunny in Tokyo."
        tool_msg = fake_ollama.last("/api/chat")["messages"][-1]
        assert tool_msg["role"] == "tool" and tool_msg["content"] == "Sunny in Tokyo"
        await run("Ollama options (`extra_body`)")
        sent = fake_ollama.last("/api/chat")
        assert sent["options"]["num_ctx"] == 8192 and sent["options"]["top_k"] == 20
        assert sent["options"]["repeat_penalty"] == 1.1 and sent["keep_alive"] == "30m"
        await run("Embeddings")
        assert len(ns["result"].data) == 2
    finally:
        if "client" in ns:  # the SDK's connection pool, or its sockets leak past the test
            await asyncio.to_thread(ns["client"].close)


async def test_curl_examples_succeed_against_the_gateway(make_gateway: Any) -> None:
    from tests.conftest import auth_headers, create_test_key

    password = "docs-admin-pass-1"
    client = await make_gateway(admin_password=password)
    headers = auth_headers(create_test_key(client.app))
    calls = 0
    for _, body in code_blocks("sh"):
        if "curl" not in body:
            continue
        words = shlex.split(body.replace("\\\n", " "))
        url = next(w for w in words if w.startswith(("$OPENAI_BASE_URL", "http://localhost")))
        payload = words[words.index("-d") + 1]
        sent = {"Content-Type": "application/json"}
        if "-u" in words:  # the admin API with HTTP Basic
            user, _, shown = words[words.index("-u") + 1].partition(":")
            assert shown == "PASSWORD"
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            sent["Authorization"] = f"Basic {token}"
            path = url.removeprefix("http://localhost:3000")
        else:
            sent.update(headers)
            path = url.replace("$OPENAI_BASE_URL", "/v1")
        resp = await client.post(path, data=payload, headers=sent)
        text = await resp.text()
        assert resp.status in (200, 201), (url, payload, text)
        calls += 1
    assert calls >= 7


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed here")
@pytest.mark.parametrize(
    "body", [b for _, b in code_blocks("js")], ids=lambda b: b.splitlines()[0][:40]
)
def test_js_examples_parse(body: str, tmp_path: Path) -> None:
    # Syntax only (ES module, top-level await): the openai npm package is not a dependency.
    script = tmp_path / "example.mjs"
    prelude = "" if "new OpenAI" in body else "const client = {};\n"
    script.write_text(prelude + body)
    out = subprocess.run(
        ["node", "--check", str(script)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr


def test_request_limits_match_the_code() -> None:
    from api.core import images
    from api.openai import chat_request, completions

    text = " ".join(section("API reference").split())
    assert f"`n` at most {chat_request.MAX_N}," in text and completions.MAX_N == chat_request.MAX_N
    assert f"at most {chat_request.MAX_IMAGE_URLS} http(s) image URLs" in text
    assert f"up to {images.MAX_REDIRECTS} redirects" in text
    assert (
        f"at most {completions.MAX_PROMPTS} prompts and {completions.MAX_GENERATIONS} generations"
    ) in text
