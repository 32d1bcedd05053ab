"""Docker files checked as data: they parse and agree with the settings table and the app."""

from __future__ import annotations

import ast
import asyncio
import os
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from gateway import create_app
from state.config import SETTINGS, SETTINGS_BY_NAME, parse_config

ROOT = Path(__file__).resolve().parent.parent
ENV_NAMES = {s.env: s for s in SETTINGS if s.env}
# Variables that configure the Python runtime or pip, not the gateway.
RUNTIME_ENV = {
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
}
FIRST_PARTY = {"api", "state", "web", "appkeys", "gateway", "cli", "logs"}


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, backslash continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continuation is ignored, as docker does
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        instruction, _, args = full.partition(" ")
        out.append((instruction.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return out


def parse_env_args(args: str) -> dict[str, str]:
    """The KEY=VALUE pairs of an ENV instruction."""
    return dict(pair.split("=", 1) for pair in args.split())


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ${VAR:-default} / ${VAR} substitution against `env` (default: empty)."""
    env = env or {}

    def sub(m: re.Match[str]) -> str:
        return env.get(m.group(1)) or (m.group(3) or "")

    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", sub, value)


def _norm(name: str) -> str:
    """A distribution name in canonical form."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_closure(path: Path) -> set[str]:
    """Distributions that `pip install -r path` installs: the listed ones and their deps."""
    todo = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            todo.append(Requirement(line))
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        if name in seen:
            continue
        seen.add(name)
        for dep in metadata.requires(req.name) or []:
            sub = Requirement(dep)
            if sub.marker is None or any(
                sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})
            ):
                todo.append(sub)
    return seen


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """The parsed Dockerfile."""
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


def _all(instrs: list[tuple[str, str]], name: str) -> list[str]:
    """Arguments of every instruction with this name."""
    return [args for ins, args in instrs if ins == name]


def _compose(name: str) -> dict[str, Any]:
    """A compose file, parsed."""
    data = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(data, dict)
    return data


def test_dockerfile_parser_handles_continuations_and_comments() -> None:
    text = "# c\nFROM x\nRUN a \\\n  # inner\n  b \\\n  c\n\nENV A=1 \\\n B=2\n"
    assert parse_dockerfile(text) == [("FROM", "x"), ("RUN", "a b c"), ("ENV", "A=1 B=2")]


def test_dockerfile_base_user_and_command(dockerfile: list[tuple[str, str]]) -> None:
    assert dockerfile[0] == ("FROM", "python:3.11-slim")
    users = _all(dockerfile, "USER")
    assert users and users[-1] not in ("root", "0")
    names = [ins for ins, _ in dockerfile]
    assert names.index("USER") < names.index("CMD")
    assert any(users[-1] in run and "useradd" in run for run in _all(dockerfile, "RUN"))
    assert _all(dockerfile, "CMD") == ['["python", "gateway.py"]']


def test_dockerfile_installs_requirements_in_a_cached_layer(
    dockerfile: list[tuple[str, str]],
) -> None:
    copies = [(i, args) for i, (ins, args) in enumerate(dockerfile) if ins == "COPY"]
    req_copy = next(i for i, args in copies if args.split()[0] == "requirements.txt")
    install = next(
        i
        for i, (ins, args) in enumerate(dockerfile)
        if ins == "RUN" and "pip install" in args and "-r requirements.txt" in args
    )
    code_copy = next(i for i, args in copies if args.split()[0] == ".")
    # requirements.txt alone, then install, then the code: code edits keep the deps layer.
    assert req_copy < install < code_copy
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "requirements.txt" not in ignored


def test_requirements_cover_every_runtime_import() -> None:
    installed = requirement_closure(ROOT / "requirements.txt")
    providers = metadata.packages_distributions()
    files = [
        ROOT / "gateway.py",
        ROOT / "logs.py",
        ROOT / "appkeys.py",
        *[p for pkg in ("api", "state", "web") for p in (ROOT / pkg).rglob("*.py")],
    ]
    if (ROOT / "cli.py").exists():
        files.append(ROOT / "cli.py")
    missing = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                top = mod.split(".")[0]
                if top in sys.stdlib_module_names or top in FIRST_PARTY or top == "__future__":
                    continue
                if not {_norm(d) for d in providers.get(top, [top])} & installed:
                    missing.add(f"{path.relative_to(ROOT)}: {top}")
    assert not missing, f"imports not in requirements.txt: {sorted(missing)}"


def test_dockerignore_keeps_the_app_in_the_image() -> None:
    ignored = {
        ln.strip().rstrip("/")
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    for needed in (
        "gateway.py",
        "logs.py",
        "appkeys.py",
        "api",
        "state",
        "web",
        "config.yaml",
        "requirements.txt",
    ):
        assert needed not in ignored
    for secret in (".env", "data", ".git"):
        assert secret in ignored


def test_dockerfile_env_port_and_volume_agree_with_settings(
    dockerfile: list[tuple[str, str]],
) -> None:
    env: dict[str, str] = {}
    for args in _all(dockerfile, "ENV"):
        env.update(parse_env_args(args))
    for name in env:
        assert name in ENV_NAMES or name in RUNTIME_ENV, f"ENV {name} is not a setting"
    gateway_env = {k: v for k, v in env.items() if k in ENV_NAMES}
    config = parse_config("", env=gateway_env)  # the values are valid settings
    assert _all(dockerfile, "EXPOSE") == [str(config.port)]
    assert config.port == SETTINGS_BY_NAME["port"].default
    assert _all(dockerfile, "VOLUME") == [config.data_dir] == ["/data"]
    # An env var beats the admin UI, so the image must not pin the Ollama URL.
    assert "OLLAMA_URL" not in env


async def test_healthcheck_probes_a_real_route(
    dockerfile: list[tuple[str, str]], aiohttp_client: Any, tmp_path: Path
) -> None:
    (check,) = _all(dockerfile, "HEALTHCHECK")
    assert "--interval=" in check and "--timeout=" in check
    command = check.split(" CMD ", 1)[1]
    match = re.fullmatch(r'python -c "(.+)" \|\| exit 1', command)
    assert match, command
    assert "/healthz" in match.group(1)
    app = create_app(parse_config("", env={}).replace(data_dir=str(tmp_path / "data")))
    paths = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    assert ("GET", "/healthz") in paths
    # Run the healthcheck's own command against the real app, as docker would.
    client = await aiohttp_client(app)
    env = {**os.environ, "PORT": str(client.port)}
    ok = await asyncio.create_subprocess_exec(sys.executable, "-c", match.group(1), env=env)
    assert await asyncio.wait_for(ok.wait(), 30) == 0
    await client.close()
    down = await asyncio.create_subprocess_exec(
        sys.executable, "-c", match.group(1), env=env, stderr=asyncio.subprocess.DEVNULL
    )
    assert await asyncio.wait_for(down.wait(), 30) != 0


def _check_gateway_service(service: dict[str, Any]) -> dict[str, str]:
    """Shared checks for the gateway service; returns its environment (interpolated)."""
    assert service["build"] == "."
    raw_env = service["environment"]
    assert isinstance(raw_env, dict)
    for name in raw_env:
        assert name in ENV_NAMES, f"environment {name} is not a setting's env var"
    for name in (
        "PORT",
        "OLLAMA_URL",
        "DATA_DIR",
        "SESSION_SECRET",
        "ADMIN_PASSWORD",
        "LOG_FORMAT",
        "LOG_LEVEL",
    ):
        assert name in raw_env
    env = {k: interpolate(str(v)) for k, v in raw_env.items()}
    config = parse_config("", env=env)
    assert service["ports"] == [f"{config.port}:{config.port}"] or [
        interpolate(p) for p in service["ports"]
    ] == [f"{config.port}:{config.port}"]
    (volume,) = service["volumes"]
    named, target = volume.split(":")
    assert target == config.data_dir == "/data"
    assert re.fullmatch(r"[a-z][a-z0-9_-]*", named), "the data volume must be a named volume"
    # With PORT changed in .env, the published and the listening port move together.
    moved = {k: interpolate(str(v), {"PORT": "8080"}) for k, v in raw_env.items()}
    assert parse_config("", env=moved).port == 8080
    assert [interpolate(p, {"PORT": "8080"}) for p in service["ports"]] == ["8080:8080"]
    return env


def test_compose_with_bundled_ollama() -> None:
    data = _compose("docker-compose.yml")
    services = data["services"]
    assert set(services) == {"gateway", "ollama"}
    env = _check_gateway_service(services["gateway"])
    assert env["OLLAMA_URL"] == "http://ollama:11434"
    assert "ollama" in services["gateway"]["depends_on"]
    ollama = services["ollama"]
    assert ollama["image"].split(":")[0] == "ollama/ollama"
    assert any(v.endswith(":/root/.ollama") for v in ollama["volumes"])
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert used == set(data["volumes"])  # every volume is a declared named volume


def test_compose_gpu_block_is_present_and_valid_when_uncommented() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "deploy" not in _compose("docker-compose.yml")["services"]["ollama"]
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == "# deploy:")
    block = []
    for ln in lines[start:]:
        if not ln.strip().startswith("#"):
            break
        block.append(ln.replace("# ", "", 1))
    enabled = "\n".join(lines[:start] + block + lines[start + len(block) :])
    gpu = yaml.safe_load(enabled)["services"]["ollama"]["deploy"]
    (device,) = gpu["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


def test_compose_external_ollama() -> None:
    data = _compose("docker-compose.external.yml")
    assert set(data["services"]) == {"gateway"}
    gateway = data["services"]["gateway"]
    env = _check_gateway_service(gateway)
    assert env["OLLAMA_URL"] == "http://host.docker.internal:11434"
    assert "host.docker.internal:host-gateway" in gateway["extra_hosts"]
    assert set(data["volumes"]) == {gateway["volumes"][0].split(":")[0]}


def test_env_example_names_real_settings() -> None:
    values: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    assert {
        "PORT",
        "OLLAMA_URL",
        "SESSION_SECRET",
        "ADMIN_PASSWORD",
        "LOG_FORMAT",
        "LOG_LEVEL",
    } <= set(values)
    for key in values:
        assert key in ENV_NAMES, f".env.example: {key} is not a setting's env var"
    config = parse_config("", env=values)
    assert config.port == 3000
    assert config.admin_password is None and config.session_secret is None


def test_docker_env_vars_are_in_the_readme_reference() -> None:
    readme = (ROOT / "README.md").read_text()
    reference = readme.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    documented = {
        cells[1].strip().strip("`"): cells[0].strip().strip("`")
        for cells in (
            ln.strip("|").split("|") for ln in reference.splitlines() if ln.startswith("| `")
        )
        if cells[1].strip()
    }
    used: set[str] = set()
    for name in ("docker-compose.yml", "docker-compose.external.yml"):
        for service in _compose(name)["services"].values():
            used |= {k for k in service.get("environment", {}) if k in ENV_NAMES}
    for args in _all(parse_dockerfile((ROOT / "Dockerfile").read_text()), "ENV"):
        used |= {k for k in parse_env_args(args) if k in ENV_NAMES}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            used.add(line.split("=", 1)[0])
    for env in used:
        assert env in documented, f"{env} is used by the Docker files but not documented"
        assert documented[env] == ENV_NAMES[env].name
