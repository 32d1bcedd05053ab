"""Benchmark: the usage store with 1,000,000 rows already recorded vs an empty one.

    python bench/bench_usage.py            # full run (a few minutes), updates RESULTS.md
    python bench/bench_usage.py --quick    # 100k rows and short runs, prints only

Two gateways run side by side on 127.0.0.1 in front of the same fast fake Ollama
(bench/fake_upstream.py): one with an empty data directory, one whose usage.db was filled with
--rows records beforehand (spread over 30 days, 25 keys, 8 models, with their hourly rollups,
written through the same code the recorder uses). Load runs alternate between the two
(empty, full, empty, full, ...) so background noise hits both alike; the median throughput of
each is compared (goal: within 10%). Then the admin Usage page, with its charts and first table
page, is fetched repeatedly from the full gateway for several ranges (goal: median < 300 ms).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from bench_gateway import (  # noqa: E402  (the shared harness, next to this file)
    ADMIN_PASSWORD,
    PROMPT,
    create_key,
    free_port,
    machine,
    process,
    run_loadgen,
    wait_http,
)

import gateway  # noqa: E402, F401  (imported first: `state` alone hits an import cycle via api)
from state import usage_db  # noqa: E402
from state.usage import RequestRecord  # noqa: E402

RESULTS = HERE / "RESULTS.md"
SECTION_START = "<!-- bench_usage:start -->"
SECTION_END = "<!-- bench_usage:end -->"
PAGES = (
    "/admin/usage",
    "/admin/usage?range=24h",
    "/admin/usage?range=30d",
    "/admin/usage?range=30d&key=k07&status=error",
)


def prefill(path: Path, rows: int, days: int = 30, seed: int = 7) -> float:
    """Write `rows` realistic records (and their rollups) into a new usage.db; seconds taken."""
    rnd = random.Random(seed)
    conn = usage_db.open_db(path)
    models = [f"model-{i}:latest" for i in range(8)]
    keys = [(f"k{i:02d}", f"team-{i:02d}") for i in range(25)]
    now = time.time()
    started = time.perf_counter()
    batch: list[RequestRecord] = []
    for i in range(rows):
        key_id, key_name = keys[rnd.randrange(len(keys))]
        status = 200 if rnd.random() < 0.95 else rnd.choice((400, 401, 404, 429, 502))
        stream = rnd.random() < 0.6
        latency = rnd.lognormvariate(6.5, 0.8)
        batch.append(
            RequestRecord(
                ts=now - days * 86400 * (rows - i) / rows,
                key_id=key_id,
                key_name=key_name,
                endpoint="/v1/chat/completions",
                model="m",
                ollama_model=rnd.choice(models),
                stream=stream,
                status=status,
                prompt_tokens=rnd.randint(20, 2000),
                completion_tokens=rnd.randint(1, 800) if status == 200 else 0,
                latency_ms=latency,
                ttft_ms=latency * 0.2 if stream else None,
                load_ms=0.5,
                tokens_per_s=rnd.uniform(20, 90),
                client_ip="10.0.0.7",
                user_agent="OpenAI/Python 1.60.0",
                request_id=f"{i:032x}",
            )
        )
        if len(batch) == 20_000:
            usage_db.insert_batch(conn, batch, False)
            batch.clear()
    if batch:
        usage_db.insert_batch(conn, batch, False)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def admin_session(base: str) -> urllib.request.OpenerDirector:
    """An opener holding a signed-in admin session cookie, as a browser would.

    (HTTP Basic would run the scrypt password check on every fetch and time that instead.)
    """
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    req = urllib.request.Request(
        base + "/admin/api/login",
        method="POST",
        headers={"Content-Type": "application/json"},
        data=json.dumps({"username": "admin", "password": ADMIN_PASSWORD}).encode(),
    )
    with opener.open(req, timeout=30) as resp:
        resp.read()
    return opener


def writer_us_per_record(path: Path, batches: int = 20, size: int = 2000, warmup: int = 3) -> float:
    """Median microseconds per record of the recorder's batch write (insert + rollups).

    The first `warmup` batches are not counted: they mostly measure reading cold index
    pages from disk into SQLite's cache.
    """
    conn = usage_db.open_db(path)
    rec = RequestRecord(
        key_id="k01",
        key_name="team-01",
        endpoint="/v1/chat/completions",
        ollama_model="model-1:latest",
        prompt_tokens=50,
        completion_tokens=20,
        latency_ms=300.0,
        ttft_ms=50.0,
    )
    times = []
    for n in range(warmup + batches):
        batch = [
            RequestRecord(**{**{f: getattr(rec, f) for f in rec.__slots__}, "ts": time.time()})
            for _ in range(size)
        ]
        t0 = time.perf_counter()
        usage_db.insert_batch(conn, batch, False)
        if n >= warmup:
            times.append((time.perf_counter() - t0) / size * 1e6)
    conn.close()
    return statistics.median(times)


def fetch_ms(opener: urllib.request.OpenerDirector, url: str) -> tuple[float, int, int]:
    """(milliseconds to the last byte, status, bytes) of one GET."""
    t0 = time.perf_counter()
    with opener.open(url, timeout=60) as resp:
        body = resp.read()
        status = resp.status
    return (time.perf_counter() - t0) * 1000, status, len(body)


def gateway_config(work: Path, name: str, port: int, fake_url: str) -> Path:
    """A config.yaml for one of the two gateways."""
    config = work / f"{name}.yaml"
    config.write_text(
        f"host: 127.0.0.1\nport: {port}\nollama_url: {fake_url}\n"
        f"data_dir: {work / name}\nauth: keys\nlog_level: warning\n"
    )
    return config


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Prefill, start both gateways, alternate load runs, time the page; return numbers."""
    work = Path(tempfile.mkdtemp(prefix="o2o-bench-usage-"))
    (work / "full").mkdir()
    print(f"prefilling {args.rows:,} rows ...", flush=True)
    fill_s = prefill(work / "full" / usage_db.DB_NAME, args.rows)
    db_mb = (work / "full" / usage_db.DB_NAME).stat().st_size / 1e6
    print(f"  {fill_s:.1f} s, usage.db {db_mb:.0f} MB", flush=True)
    writer = {
        "empty": writer_us_per_record(work / "writer-empty.db"),
        "full": writer_us_per_record(work / "full" / usage_db.DB_NAME),
    }
    print(
        f"writer: {writer['empty']:.1f} us/record empty, {writer['full']:.1f} us/record "
        f"with {args.rows:,} rows",
        flush=True,
    )
    fake_port, empty_port, full_port = free_port(), free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PORT", "HOST", "OLLAMA_URL", "DATA_DIR", "LOG_LEVEL", "LOG_FORMAT")
    }
    env["ADMIN_PASSWORD"] = ADMIN_PASSWORD
    fake_cmd = [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(fake_port)]
    gw = [sys.executable, str(ROOT / "gateway.py"), "--config"]
    runs: dict[str, list[dict[str, Any]]] = {"empty": [], "full": []}
    with (
        process(fake_cmd, work / "fake.log"),
        process(
            gw + [str(gateway_config(work, "empty", empty_port, fake_url))],
            work / "empty.log",
            env=env,
            cwd=ROOT,
        ),
        process(
            gw + [str(gateway_config(work, "full", full_port, fake_url))],
            work / "full.log",
            env=env,
            cwd=ROOT,
        ),
    ):
        bases = {"empty": f"http://127.0.0.1:{empty_port}", "full": f"http://127.0.0.1:{full_port}"}
        wait_http(fake_url + "/")
        keys = {}
        for name, base in bases.items():
            wait_http(base + "/healthz")
            keys[name] = create_key(base)
        body = {"model": "bench", "messages": PROMPT, "stream": args.stream}
        for rep in range(args.reps):
            for name in ("empty", "full") if rep % 2 == 0 else ("full", "empty"):
                result = run_loadgen(
                    bases[name] + "/v1/chat/completions",
                    body,
                    {"Authorization": f"Bearer {keys[name]}"},
                    args.concurrency,
                    args.requests,
                    args.warmup,
                    args.stream,
                )
                if result["errors"]:
                    raise RuntimeError(
                        f"{name}: {result['errors']} errors, first: "
                        f"{result['first_error']} (see {work})"
                    )
                runs[name].append(result)
                print(
                    f"rep {rep + 1}/{args.reps}  {name:5s}  {result['rps']:7.0f} req/s  "
                    f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms",
                    flush=True,
                )
        opener = admin_session(bases["full"])
        pages: dict[str, dict[str, float]] = {}
        for page in PAGES:
            for _ in range(2):  # warm up: first-use imports, template compile, page cache
                fetch_ms(opener, bases["full"] + page)
            times = []
            for _ in range(args.page_reps):
                ms, status, size = fetch_ms(opener, bases["full"] + page)
                if status != 200:
                    raise RuntimeError(f"{page}: HTTP {status}")
                times.append(ms)
            pages[page] = {
                "median_ms": statistics.median(times),
                "max_ms": max(times),
                "kb": size / 1024,
            }
            print(
                f"page {page:50s} median {pages[page]['median_ms']:6.1f} ms  "
                f"max {pages[page]['max_ms']:6.1f} ms  {size / 1024:.0f} KB",
                flush=True,
            )
    rps = {name: statistics.median(r["rps"] for r in rs) for name, rs in runs.items()}
    p50 = {name: statistics.median(r["p50_ms"] for r in rs) for name, rs in runs.items()}
    pairs = [f["rps"] / e["rps"] for e, f in zip(runs["empty"], runs["full"], strict=True)]
    return {
        "rows": args.rows,
        "fill_s": fill_s,
        "db_mb": db_mb,
        "rps": rps,
        "p50": p50,
        "paired_ratio": statistics.median(pairs),
        "writer_us": writer,
        "runs": {n: [round(r["rps"]) for r in rs] for n, rs in runs.items()},
        "pages": pages,
        "machine": machine(),
        "args": vars(args),
        "work": str(work),
    }


def verdicts(res: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(check, target, measured, passed) for issue 5's goals."""
    ratio = res["paired_ratio"]
    out = [
        (
            f"throughput with {res['rows']:,} rows vs empty",
            "within 10%",
            f"{ratio:.1%} (median of back-to-back pairs; medians "
            f"{res['rps']['full']:.0f} vs {res['rps']['empty']:.0f} req/s)",
            ratio >= 0.9,
        )
    ]
    for page, m in res["pages"].items():
        out.append(
            (f"render {page}", "< 300 ms", f"{m['median_ms']:.0f} ms median", m["median_ms"] < 300)
        )
    return out


def report(res: dict[str, Any]) -> str:
    """The "Usage store" section of RESULTS.md."""
    a, mc = res["args"], res["machine"]
    lines = [
        SECTION_START,
        "## Usage store",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with "
        f"`python bench/bench_usage.py`. Machine: {mc['nproc']} CPUs ({mc['cpu']}), "
        f"Python {mc['python']}, aiohttp {mc['aiohttp']}, {mc['os']}. The machine was "
        "shared with other work while measuring.",
        "",
        f"Prefill: {res['rows']:,} rows over 30 days (25 keys, 8 models) with rollups in "
        f"{res['fill_s']:.0f} s; usage.db {res['db_mb']:.0f} MB.",
        "",
        f"Load: {'streaming' if a['stream'] else 'non-streaming'} chat completions, "
        f"concurrency {a['concurrency']}, {a['requests']:,} requests per run after "
        f"{a['warmup']} warm-up, {a['reps']} runs per gateway, alternating "
        "empty/full. Each gateway writes every request to its usage.db as it serves. "
        "The verdict uses the median of the per-pair ratios (each pair ran back to "
        "back), which cancels most of the load other work put on the machine.",
        "",
        "| Usage store | req/s (median) | p50 latency | runs (req/s) |",
        "|---|---:|---:|---|",
    ]
    for name in ("empty", "full"):
        label = "empty" if name == "empty" else f"{res['rows']:,} rows"
        lines.append(
            f"| {label} | {res['rps'][name]:.0f} | {res['p50'][name]:.2f} ms | "
            f"{', '.join(map(str, res['runs'][name]))} |"
        )
    w = res["writer_us"]
    lines += [
        "",
        "Recorder batch write (insert + hourly and daily rollups, in its worker "
        "thread), median of 20 batches of 2,000 after 3 warm-up batches: "
        f"{w['empty']:.1f} us/record into an empty store, {w['full']:.1f} us/record "
        f"into the {res['rows']:,}-row store ({w['full'] - w['empty']:+.1f} us, against "
        f"roughly {1e6 / res['rps']['empty']:.0f} us of wall time per request at the "
        "measured throughput). Not a gate: on this shared machine single runs of it "
        "vary by more than the difference.",
    ]
    lines += [
        "",
        f"Usage page on the {res['rows']:,}-row store (charts, totals, first table "
        f"page; signed-in session; {a['page_reps']} fetches each after 2 warm-ups, "
        "time to last byte):",
        "",
        "| Page | median | max | size |",
        "|---|---:|---:|---:|",
    ]
    for page, m in res["pages"].items():
        lines.append(
            f"| `{page}` | {m['median_ms']:.0f} ms | {m['max_ms']:.0f} ms | {m['kb']:.0f} KB |"
        )
    lines += ["", "| Check | Target | Measured | |", "|---|---|---|---|"]
    for check, target, measured, ok in verdicts(res):
        lines.append(f"| {check} | {target} | {measured} | {'PASS' if ok else 'FAIL'} |")
    lines += ["", SECTION_END]
    return "\n".join(lines) + "\n"


def write_results(section: str) -> None:
    """Replace (or append) this script's section of RESULTS.md, leaving the rest alone."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    if SECTION_START in text and SECTION_END in text:
        head, rest = text.split(SECTION_START, 1)
        text = head + section + rest.split(SECTION_END, 1)[1].lstrip("\n")
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + section
    RESULTS.write_text(text)


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=6, help="load runs per gateway")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--stream", action="store_true", help="streaming requests")
    parser.add_argument("--page-reps", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="short run; RESULTS.md untouched")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.reps, args.requests, args.warmup, args.page_reps = 100_000, 2, 500, 50, 5
        args.no_write = True
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
