"""A real server process killed with SIGKILL mid-writes restarts with every acknowledged write."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from state.registry import hash_secret
from state.store import StateFile
from tests.process_helpers import wait_healthy
from tests.test_auth import NEW_PW, basic

ROOT = Path(__file__).resolve().parent.parent
ADMIN = basic("admin", NEW_PW)
# Settings the machine's environment could set; the subprocess must only see its config.
_ENV_SETTINGS = (
    "HOST",
    "PORT",
    "OLLAMA_URL",
    "DATA_DIR",
    "SESSION_SECRET",
    "ADMIN_PASSWORD",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "METRICS_TOKEN",
)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """`python gateway.py --config …` as a subprocess on a free 127.0.0.1 port."""

    def __init__(
        self, tmp_path: Path, ollama_url: str = "http://127.0.0.1:9", extra_yaml: str = ""
    ) -> None:
        self.port = free_port()
        self.data = tmp_path / "data"
        self.config = tmp_path / "config.yaml"
        self.log = tmp_path / "gateway.log"
        self.config.write_text(
            f"host: 127.0.0.1\nport: {self.port}\ndata_dir: {self.data}\n"
            f"ollama_url: {ollama_url}\nadmin_password: {NEW_PW}\n{extra_yaml}"
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server (use `await ready()` next)."""
        env = {k: v for k, v in os.environ.items() if k not in _ENV_SETTINGS}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "gateway.py", "--config", str(self.config)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, timeout: float = 30.0) -> None:
        """Wait until /healthz answers."""
        assert self.proc is not None
        proc = self.proc
        await wait_healthy(
            self.url, lambda: proc.poll() is not None, lambda: self.log.read_text()[-3000:], timeout
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)


@pytest.fixture
def gateway_process(tmp_path: Path) -> Any:
    """Factory for GatewayProcess; every started process is stopped at the end."""
    made: list[GatewayProcess] = []

    def factory(**kw: Any) -> GatewayProcess:
        gw = GatewayProcess(tmp_path, **kw)
        made.append(gw)
        return gw

    yield factory
    for gw in made:
        if gw.proc is not None and gw.proc.poll() is None:
            gw.stop()


@pytest.mark.slow
async def test_sigkill_mid_writes_keeps_every_acknowledged_write(gateway_process: Any) -> None:
    gw = gateway_process()
    gw.start()
    await gw.ready()
    created: dict[str, dict[str, Any]] = {}  # acknowledged creations by id
    patched: set[str] = set()  # acknowledged notes updates
    settings: list[int] = []  # acknowledged key_rotation_grace values, in order
    stop = asyncio.Event()
    broken: list[BaseException] = []  # writes cut by the kill

    async def writer(session: aiohttp.ClientSession, w: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                async with session.post(
                    gw.url + "/admin/api/keys", json={"name": f"w{w}-{n}", "models": ["*"]}
                ) as r:
                    if r.status != 201:
                        return
                    body = await r.json()
                created[body["id"]] = body
                async with session.patch(
                    f"{gw.url}/admin/api/keys/{body['id']}", json={"notes": "patched"}
                ) as r:
                    if r.status == 200:
                        await r.read()
                        patched.add(body["id"])
                if w == 0:
                    async with session.patch(
                        gw.url + "/admin/api/settings", json={"key_rotation_grace": n}
                    ) as r:
                        if r.status == 200:
                            await r.read()
                            settings.append(n)
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                broken.append(exc)
                return

    async with aiohttp.ClientSession(headers=ADMIN) as session:
        tasks = [asyncio.create_task(writer(session, w)) for w in range(6)]
        while len(created) < 40:
            await asyncio.sleep(0.005)
        gw.kill()  # in the middle of the stream of writes
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert broken, "the kill should have cut requests in flight"

    # The file on disk is valid JSON (old or new version, never a mix).
    doc = json.loads((gw.data / "state.json").read_text())
    assert doc["version"] == 1
    gw.start()
    await gw.ready()
    async with aiohttp.ClientSession(headers=ADMIN) as session:
        async with session.get(gw.url + "/admin/api/keys") as r:
            keys = {k["id"]: k for k in (await r.json())["keys"]}
        async with session.get(gw.url + "/admin/api/settings") as r:
            grace = {s["name"]: s for s in (await r.json())["settings"]}["key_rotation_grace"]
    missing = set(created) - set(keys)
    assert not missing, f"{len(missing)} acknowledged creations lost"
    assert all(keys[i]["notes"] == "patched" for i in patched)
    if settings:
        assert grace["value"] >= settings[-1]
    state = (gw.data / "state.json").read_text()
    for body in list(created.values())[:10]:
        assert hash_secret(body["key"]) in state
    assert gw.stop() == 0


@pytest.mark.slow
async def test_corrupt_state_stops_startup_with_restore_hint(gateway_process: Any) -> None:
    gw = gateway_process()
    gw.start()
    await gw.ready()
    async with aiohttp.ClientSession(headers=ADMIN) as session:
        for name in ("a", "b"):
            async with session.post(
                gw.url + "/admin/api/keys", json={"name": name, "models": ["*"]}
            ) as r:
                assert r.status == 201
    assert gw.stop() == 0
    sf = StateFile(gw.data)
    good_bak = sf.bak.read_text()
    sf.path.write_text('{"version": 1, "keys": [')  # a torn edit by hand
    gw.start()
    assert gw.proc.wait(30) != 0
    out = gw.log.read_text()
    assert str(sf.path) in out and f"cp {sf.bak} {sf.path}" in out
    assert "CRITICAL" in out and "Traceback" not in out
    assert sf.bak.read_text() == good_bak  # the backup was not touched
    # Following the advice brings the gateway back with its keys.
    sf.path.write_text(good_bak)
    gw.start()
    await gw.ready()
    async with (
        aiohttp.ClientSession(headers=ADMIN) as session,
        session.get(gw.url + "/admin/api/keys") as r,
    ):
        assert [k["name"] for k in (await r.json())["keys"]] == ["a"]
