"""Benchmark: the gateway's /v1 against the fake upstream called directly, in the same run.

    python bench/bench_gateway.py                 # full run (a few minutes), writes RESULTS.md
    python bench/bench_gateway.py --quick         # a short smoke run, prints only

It starts, on 127.0.0.1 only: a fast fake Ollama (bench/fake_upstream.py), a bare aiohttp
pass-through in front of it (the floor cost of one extra hop), and the gateway itself
(`python gateway.py`, `auth: keys`, with a real key). A load generator in a separate process
(aiohttp client) then sends a bounded number of chat requests at concurrency 1 and 32, streaming
and not, to each target: the fake directly (native /api/chat), the pass-through (native path)
and the gateway (/v1/chat/completions). Each scenario runs several times; the medians are
reported. Finally it reads the gateway's peak RSS (VmHWM) after all requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
SECTION_START = "<!-- bench_gateway:start -->"
SECTION_END = "<!-- bench_gateway:end -->"
ADMIN_PASSWORD = "bench-admin-password-1"
PROMPT = [{"role": "user", "content": "Say hello in ten words."}]
TARGETS = {
    "direct": "fake Ollama, native /api/chat",
    "passthrough": "bare aiohttp pass-through, native /api/chat",
    "gateway": "gateway, /v1/chat/completions",
}


# -- load generator (runs in its own process) -----------------------------------------------


async def _load(
    url: str,
    body: bytes,
    headers: dict[str, str],
    concurrency: int,
    requests: int,
    warmup: int,
    stream: bool,
) -> dict[str, Any]:
    """Send `requests` POSTs with `concurrency` workers; per-request latency to the last byte."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    latencies: list[float] = []
    errors: list[str] = []

    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers
    ) as session:

        async def one() -> tuple[float, str | None]:
            t0 = time.perf_counter()
            async with session.post(url, data=body) as resp:
                if stream:
                    async for _ in resp.content.iter_any():
                        pass
                else:
                    await resp.read()
                err = None if resp.status == 200 else f"HTTP {resp.status}"
            return time.perf_counter() - t0, err

        async def phase(total: int, record: bool) -> None:
            counter = iter(range(total))

            async def worker() -> None:
                for _ in counter:
                    try:
                        latency, err = await one()
                    except Exception as exc:  # counted and reported, never fatal
                        latency, err = 0.0, f"{type(exc).__name__}: {exc}"
                    if err:
                        errors.append(err)
                    elif record:
                        latencies.append(latency)

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        await phase(warmup, record=False)  # connections opened, caches warm
        t_all = time.perf_counter()
        await phase(requests, record=True)
        elapsed = time.perf_counter() - t_all
    latencies.sort()
    done = len(latencies)
    return {
        "ok": done,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "rps": done / elapsed if done else 0.0,
        "p50_ms": _pct(latencies, 50) * 1000,
        "p99_ms": _pct(latencies, 99) * 1000,
    }


def _pct(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def loadgen_main(args: argparse.Namespace) -> None:
    """Entry point of the load generator process: prints one JSON result."""
    result = asyncio.run(
        _load(
            args.loadgen,
            args.body.encode(),
            json.loads(args.headers),
            args.concurrency,
            args.requests,
            args.warmup,
            args.stream,
        )
    )
    print(json.dumps(result), flush=True)


# -- orchestration ------------------------------------------------------------------------


def free_port() -> int:
    """A free port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Block until `url` answers (any status)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@contextlib.contextmanager
def process(
    cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A background process whose output goes to `log`; terminated on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def create_key(base: str) -> str:
    """A real API key, made through the admin JSON API (HTTP Basic with ADMIN_PASSWORD)."""
    import base64
    import urllib.request

    basic = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    req = urllib.request.Request(
        base + "/admin/api/keys",
        method="POST",
        data=json.dumps({"name": "bench", "models": ["*"]}).encode(),
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        secret = json.loads(resp.read())["key"]
    if not re.fullmatch(r"sk-[A-Za-z0-9_\-]{20,}", secret):
        raise RuntimeError(f"unexpected key format from the admin API: {secret[:6]}…")
    return str(secret)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) of a process in MB, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmHWM:", "VmRSS:")):
            key, kb = line.split(":")
            values[key] = int(kb.split()[0]) / 1024
    return values["VmHWM"], values["VmRSS"]


@dataclass
class Scenario:
    """One measured cell: a target, streaming or not, a concurrency."""

    target: str
    stream: bool
    concurrency: int

    @property
    def label(self) -> str:
        """Short name."""
        return f"{self.target} {'stream' if self.stream else 'non-stream'} c={self.concurrency}"


def run_loadgen(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    concurrency: int,
    requests: int,
    warmup: int,
    stream: bool,
) -> dict[str, Any]:
    """Run the load generator in a fresh process and return its result."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--loadgen",
        url,
        "--body",
        json.dumps(body),
        "--headers",
        json.dumps(headers),
        "--concurrency",
        str(concurrency),
        "--requests",
        str(requests),
        "--warmup",
        str(warmup),
    ]
    if stream:
        cmd.append("--stream")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def machine() -> dict[str, str]:
    """A description of the machine the numbers come from."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import aiohttp

    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "os": f"{platform.system()} {platform.release()}",
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Start everything, run every scenario `reps` times, return medians and RSS."""
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="o2o-bench-"))
    fake_port, pass_port, gw_port = free_port(), free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    config = work / "config.yaml"
    config.write_text(
        f"host: 127.0.0.1\nport: {gw_port}\nollama_url: {fake_url}\n"
        f"data_dir: {work / 'data'}\nauth: keys\nlog_level: {args.log_level}\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PORT", "HOST", "OLLAMA_URL", "DATA_DIR", "LOG_LEVEL", "LOG_FORMAT")
    }
    env["ADMIN_PASSWORD"] = ADMIN_PASSWORD
    fake_cmd = [
        sys.executable,
        str(HERE / "fake_upstream.py"),
        "--port",
        str(fake_port),
        "--tokens",
        str(args.tokens),
    ]
    pass_cmd = [
        sys.executable,
        str(HERE / "fake_upstream.py"),
        "--port",
        str(pass_port),
        "--passthrough",
        fake_url,
    ]
    gw_cmd = [sys.executable, str(ROOT / "gateway.py"), "--config", str(config)]
    results: dict[str, list[dict[str, Any]]] = {}
    gateway_requests = 0
    with (
        process(fake_cmd, work / "fake.log") as fake,
        process(pass_cmd, work / "pass.log") as passthrough,
        process(gw_cmd, work / "gateway.log", env=env, cwd=ROOT) as gw,
    ):
        # CPU time is charged to the process that serves the target (the fake for `direct`);
        # for the proxies the fake's share is the same as in `direct` and is not counted.
        serving = {"direct": fake.pid, "passthrough": passthrough.pid, "gateway": gw.pid}
        wait_http(fake_url + "/")
        wait_http(f"http://127.0.0.1:{pass_port}/")
        wait_http(f"http://127.0.0.1:{gw_port}/healthz")
        key = create_key(f"http://127.0.0.1:{gw_port}")
        native = {"model": "bench", "messages": PROMPT}
        openai = {"model": "bench", "messages": PROMPT}
        urls = {
            "direct": (fake_url + "/api/chat", native, {}),
            "passthrough": (f"http://127.0.0.1:{pass_port}/api/chat", native, {}),
            "gateway": (
                f"http://127.0.0.1:{gw_port}/v1/chat/completions",
                openai,
                {"Authorization": f"Bearer {key}"},
            ),
        }
        scenarios = [Scenario(t, s, c) for c in (1, 32) for s in (False, True) for t in urls]
        for rep in range(args.reps):
            for sc in scenarios:
                url, body, headers = urls[sc.target]
                n = args.requests_c1 if sc.concurrency == 1 else args.requests_c32
                cpu_before = cpu_seconds(serving[sc.target])
                result = run_loadgen(
                    url,
                    {**body, "stream": sc.stream},
                    headers,
                    sc.concurrency,
                    n,
                    args.warmup,
                    sc.stream,
                )
                result["cpu_us"] = (
                    (cpu_seconds(serving[sc.target]) - cpu_before) / (n + args.warmup) * 1e6
                )
                if sc.target == "gateway":
                    gateway_requests += n + args.warmup
                if result["errors"]:
                    raise RuntimeError(
                        f"{sc.label}: {result['errors']} errors, first: "
                        f"{result['first_error']} (see {work}/gateway.log)"
                    )
                results.setdefault(sc.label, []).append(result)
                print(
                    f"rep {rep + 1}/{args.reps}  {sc.label:32s} {result['rps']:8.0f} req/s  "
                    f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
                    f"CPU {result['cpu_us']:5.0f} us/req",
                    flush=True,
                )
        # Top up to the RSS checkpoint: 10,000 requests through the gateway at least.
        url, body, headers = urls["gateway"]
        while gateway_requests < args.rss_requests:
            n = min(5000, args.rss_requests - gateway_requests)
            run_loadgen(url, {**body, "stream": True}, headers, 32, n, 0, True)
            gateway_requests += n
        hwm, rss = peak_rss_mb(gw.pid)
    # Logs and the data directory stay behind only when something failed (the error names them).
    shutil.rmtree(work, ignore_errors=True)
    medians = {
        label: {
            k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms", "cpu_us")
        }
        for label, runs in results.items()
    }
    return {
        "medians": medians,
        "runs": results,
        "reps": args.reps,
        "rss_hwm_mb": hwm,
        "rss_now_mb": rss,
        "gateway_requests": gateway_requests,
        "machine": machine(),
        "requests_c1": args.requests_c1,
        "requests_c32": args.requests_c32,
        "tokens": args.tokens,
        "log_level": args.log_level,
        "load": (load_before, os.getloadavg()[0]),
    }


def verdicts(res: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(check, target, measured, passed) for each goal in issue 2."""
    m = res["medians"]
    out = []
    runs = res.get("runs")

    def paired(target: str, cell: str, key: str, op: str) -> float:
        """Median over reps of (target vs direct) in the same rep, the three run back to back,
        which cancels most background load; medians of medians when runs are not kept."""
        a, d = f"{target} {cell}", f"direct {cell}"
        if runs:
            pairs = zip(runs[a], runs[d], strict=True)
            if op == "-":
                return float(statistics.median(x[key] - y[key] for x, y in pairs))
            return float(statistics.median(x[key] / y[key] for x, y in pairs))
        return float(m[a][key] - m[d][key] if op == "-" else m[a][key] / m[d][key])

    for kind in ("non-stream", "stream"):
        added = paired("gateway", f"{kind} c=1", "p50_ms", "-")
        out.append((f"added p50 latency, {kind}, c=1", "<= 1 ms", f"{added:.2f} ms", added <= 1.0))
    for kind in ("non-stream", "stream"):
        ratio = paired("gateway", f"{kind} c=32", "rps", "/")
        ref = paired("passthrough", f"{kind} c=32", "rps", "/")
        out.append(
            (
                f"throughput vs direct, {kind}, c=32",
                ">= 25%",
                f"{ratio:.1%} (bare pass-through: {ref:.1%})",
                ratio >= 0.25,
            )
        )
    out.append(
        (
            f"peak RSS after {res['gateway_requests']:,} requests",
            "<= 80 MB",
            f"{res['rss_hwm_mb']:.1f} MB",
            res["rss_hwm_mb"] <= 80,
        )
    )
    return out


def report(res: dict[str, Any]) -> str:
    """The /v1 section of RESULTS.md, in Markdown."""
    mc = res["machine"]
    lines = [
        SECTION_START,
        "## /v1 gateway vs direct upstream",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with "
        f"`python bench/bench_gateway.py`.",
        "",
        f"- Machine: {mc['nproc']} CPUs ({mc['cpu']}), {mc['os']}",
        f"- Python {mc['python']}, aiohttp {mc['aiohttp']}",
        f"- 1-minute load average at start / end: {res['load'][0]:.1f} / "
        f"{res['load'][1]:.1f} (the bench's own processes use up to 3; more means other "
        f"work shared the CPUs and the numbers are pessimistic)",
        "- Load generator, fake upstream, pass-through and gateway all on this machine "
        "(127.0.0.1), each its own process.",
        f"- Each reply: {res['tokens']} content lines plus the done line. Requests per "
        f"run: {res['requests_c1']:,} at c=1, {res['requests_c32']:,} at c=32 (after a "
        f"warm-up); median of {res['reps']} runs. Gateway log level: "
        f"{res['log_level']}, `auth: keys` with a real key.",
        "",
        "| Scenario | req/s | p50 ms | p99 ms | req/s vs direct | server CPU µs/req |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    m = res["medians"]
    for c in (1, 32):
        for kind in ("non-stream", "stream"):
            direct = m[f"direct {kind} c={c}"]["rps"]
            for target in TARGETS:
                row = m[f"{target} {kind} c={c}"]
                lines.append(
                    f"| {target} {kind} c={c} | {row['rps']:,.0f} | "
                    f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
                    f"{row['rps'] / direct:.0%} | {row['cpu_us']:.0f} |"
                )
    lines += [
        "",
        "Targets (issue 2). The latency and throughput checks use the median over "
        "runs of the gateway-vs-direct difference or ratio within one run (the targets "
        "of a cell run back to back), which cancels most background load.",
        "",
        "| Check | Target | Measured | Met |",
        "|---|---|---|---|",
    ]
    for check, target, measured, ok in verdicts(res):
        lines.append(f"| {check} | {target} | {measured} | {'yes' if ok else '**no**'} |")
    lines += [
        "",
        "Legend: " + "; ".join(f"`{k}` = {v}" for k, v in TARGETS.items()) + ". "
        "Server CPU is the user+system time of the process serving the target, per "
        "request (for `direct` the fake itself).",
        SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def write_results(section: str) -> None:
    """Replace (or add) this script's section of RESULTS.md, keeping every other section."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    if SECTION_START in text and SECTION_END in text:
        head, rest = text.split(SECTION_START, 1)
        tail = rest.split(SECTION_END, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="runs per scenario (median)")
    parser.add_argument("--requests-c1", type=int, default=1000)
    parser.add_argument("--requests-c32", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=10, help="content lines per reply")
    parser.add_argument("--rss-requests", type=int, default=10_000)
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
    parser.add_argument("--quick", action="store_true", help="short run; RESULTS.md untouched")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    parser.add_argument("--body", help=argparse.SUPPRESS)
    parser.add_argument("--headers", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        loadgen_main(args)
        return 0
    if args.quick:
        args.reps, args.requests_c1, args.requests_c32, args.warmup = 1, 200, 600, 30
        args.rss_requests, args.no_write = 0, True
    res = bench(args)
    print()
    for check, target, measured, ok in verdicts(res):
        print(f"{'PASS' if ok else 'FAIL'}  {check}: {measured} (target {target})")
    if not args.no_write:
        write_results(report(res))
        print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
