"""The benchmark's parts stay valid: the fake speaks what the gateway reads, results merge."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway import create_app
from state.config import parse_config
from tests.conftest import auth_headers, create_test_key

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench_gateway  # noqa: E402
from fake_upstream import FakeUpstream, passthrough_app  # noqa: E402


@pytest.fixture
async def fake_url(aiohttp_server: Any) -> str:
    """The bench's fake Ollama, started."""
    server = await aiohttp_server(FakeUpstream(tokens=4).app())
    return str(server.make_url("")).rstrip("/")


async def test_gateway_serves_chat_from_the_bench_fake(
    aiohttp_client: Any, fake_url: str, tmp_path: Path
) -> None:
    config = parse_config("", env={}).replace(
        data_dir=str(tmp_path / "data"), ollama_url=fake_url, auth="keys"
    )
    client = await aiohttp_client(create_app(config))
    headers = auth_headers(create_test_key(client.app))
    messages = [{"role": "user", "content": "hi"}]
    resp = await client.post(
        "/v1/chat/completions",
        headers=headers,
        json={"model": "bench", "messages": messages, "stream": False},
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["choices"][0]["message"]["content"] == "tok0 tok1 tok2 tok3 "
    assert body["usage"]["completion_tokens"] == 4
    resp = await client.post(
        "/v1/chat/completions",
        headers=headers,
        json={"model": "bench", "messages": messages, "stream": True},
    )
    text = await resp.text()
    assert resp.status == 200
    frames = [ln[6:] for ln in text.splitlines() if ln.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    content = "".join(
        json.loads(f)["choices"][0]["delta"].get("content") or ""
        for f in frames[:-1]
        if json.loads(f)["choices"]
    )
    assert content == "tok0 tok1 tok2 tok3 "


async def test_passthrough_copies_the_fake(
    aiohttp_client: Any, aiohttp_server: Any, fake_url: str
) -> None:
    proxy = await aiohttp_client(passthrough_app(fake_url))
    for stream in (True, False):
        body: dict[str, Any] = {"model": "bench", "messages": [], "stream": stream}
        via = await proxy.post("/api/chat", json=body)
        async with proxy.session.post(fake_url + "/api/chat", json=body) as direct:
            assert await via.read() == await direct.read()
            assert via.headers["Content-Type"] == direct.headers["Content-Type"]


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([1.0], 50, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([float(i) for i in range(1, 101)], 99, 99.0),
        ([float(i) for i in range(1, 101)], 50, 50.0),
    ],
)
def test_percentile_nearest_rank(values: list[float], pct: float, expected: float) -> None:
    assert bench_gateway._pct(values, pct) == expected


def _result(gw_rps: float, gw_p50: float, hwm: float) -> dict[str, Any]:
    """A synthetic bench result: direct 1000 req/s and 0.2 ms, pass-through half of it."""
    medians = {}
    for c in (1, 32):
        for kind in ("non-stream", "stream"):
            medians[f"direct {kind} c={c}"] = {"rps": 1000.0, "p50_ms": 0.2}
            medians[f"passthrough {kind} c={c}"] = {"rps": 500.0, "p50_ms": 0.5}
            medians[f"gateway {kind} c={c}"] = {"rps": gw_rps, "p50_ms": gw_p50}
    return {"medians": medians, "rss_hwm_mb": hwm, "gateway_requests": 10_000}


@pytest.mark.parametrize(
    ("gw_rps", "gw_p50", "hwm", "passed"),
    [
        (250.0, 1.2, 80.0, [True, True, True, True, True]),
        (249.0, 1.21, 80.1, [False, False, False, False, False]),
        (400.0, 0.5, 50.0, [True, True, True, True, True]),
    ],
)
def test_verdicts_apply_the_issue_targets(
    gw_rps: float, gw_p50: float, hwm: float, passed: list[bool]
) -> None:
    got = bench_gateway.verdicts(_result(gw_rps, gw_p50, hwm))
    assert [ok for *_, ok in got] == passed


def test_results_section_is_replaced_and_others_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "RESULTS.md"
    monkeypatch.setattr(bench_gateway, "RESULTS", results)
    start, end = bench_gateway.SECTION_START, bench_gateway.SECTION_END
    bench_gateway.write_results(f"{start}\nfirst\n{end}\n")
    assert results.read_text() == f"# Benchmark results\n\n{start}\nfirst\n{end}\n"
    results.write_text(results.read_text() + "\n## Usage store\n\nkept\n")
    bench_gateway.write_results(f"{start}\nsecond\n{end}\n")
    text = results.read_text()
    assert "first" not in text and "second" in text
    assert text.endswith("## Usage store\n\nkept\n")
    assert text.count(start) == 1


@pytest.mark.slow
def test_bench_script_runs_end_to_end(tmp_path: Path) -> None:
    """The whole harness with tiny counts: processes, key, load generator, report (no targets)."""
    import subprocess

    script = Path(bench_gateway.__file__)
    before = (script.parent / "RESULTS.md").read_text()
    out = subprocess.run(
        [
            sys.executable,
            str(script),
            "--reps",
            "1",
            "--requests-c1",
            "20",
            "--requests-c32",
            "64",
            "--warmup",
            "5",
            "--rss-requests",
            "0",
            "--no-write",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [ln for ln in out.stdout.splitlines() if ln.startswith("rep 1/1")]
    assert len(rows) == 12, out.stdout
    verdicts = [ln for ln in out.stdout.splitlines() if ln.startswith(("PASS", "FAIL"))]
    assert len(verdicts) == 5, out.stdout
    assert (script.parent / "RESULTS.md").read_text() == before  # --no-write


def test_verdicts_pair_runs_within_a_rep() -> None:
    """Ratios are taken per run (gateway and direct back to back), then the median."""
    res = _result(0.0, 0.0, 50.0)
    runs: dict[str, list[dict[str, float]]] = {}
    for c in (1, 32):
        for kind in ("non-stream", "stream"):
            # Background load halves everything in runs 2 and 3: per-run ratios stay 30%.
            runs[f"direct {kind} c={c}"] = [{"rps": r, "p50_ms": 0.2} for r in (1000, 500, 500)]
            runs[f"passthrough {kind} c={c}"] = [{"rps": r, "p50_ms": 0.5} for r in (500, 250, 250)]
            runs[f"gateway {kind} c={c}"] = [
                {"rps": r, "p50_ms": p} for r, p in ((300, 0.9), (150, 1.5), (150, 1.0))
            ]
    res["runs"] = runs
    got = {check: (measured, ok) for check, _, measured, ok in bench_gateway.verdicts(res)}
    assert got["throughput vs direct, stream, c=32"] == ("30.0% (bare pass-through: 50.0%)", True)
    assert got["added p50 latency, stream, c=1"] == ("0.80 ms", True)
