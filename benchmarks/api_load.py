"""API load test: ``tunesmith serve`` on the bundled model under 16 concurrent clients x 100 requests.

Starts the real command (``tunesmith serve``, 127.0.0.1 only, a free port, an API key) and drives it
with asyncio clients: plain and streaming chat completions, and some streams that the client drops
after the first token. Bounded in count (clients x requests) and in time (``--max-seconds``: no new
request starts after it). Reports, and exits non-zero unless all hold:

- zero 5xx answers (and every non-dropped request completed);
- latency p50 / p99 of completed requests (streams: to the last event), time to first token;
- the server's memory (RSS) after warm-up and at the end;
- a dropped client's slot is freed: a stream asking for 2,000 tokens is dropped after its first
  token, and a short request sent right after must finish in about the time it takes alone (the
  engine batches statically, so a row left generating for a gone client would hold it for minutes).

    python benchmarks/api_load.py                       # 16 clients x 100 requests, max_tokens 8
    python benchmarks/api_load.py --clients 4 --requests 10 --output load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

QUESTIONS = [
    "What is 2 + 3?", "水的化学式是什么？", "Who was the first emperor of Qin?", "长江流入哪个海？",
    "What does the heart do?", "计算 5 × 6。", "Give a synonym for happy.", "电阻为2欧，电流为3安，电压是多少？",
    "Why is the sky blue?", "鲁迅的代表作有哪些？", "Name a prime number above 10.", "光合作用需要什么？",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(args: argparse.Namespace, port: int, key: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "tunesmith.cli.main", "serve", "--model", args.model, "--host", "127.0.0.1",
           "--port", str(port), "--max-batch-size", str(args.max_batch_size), f"max_new_tokens={args.max_tokens}"]
    env = {**os.environ, "TUNESMITH_API_KEY": key, "TUNESMITH_NO_PROGRESS": "1"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(args.log, "wb"))


async def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.time() + timeout
    async with httpx.AsyncClient() as client:
        while time.time() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"tunesmith serve exited with {proc.returncode}; see its log")
            try:
                if (await client.get(url + "/health", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(1)
    raise SystemExit("tunesmith serve did not become ready in time")


def body(i: int, max_tokens: int, stream: bool) -> dict[str, Any]:
    return {"model": "gemma-3-270m", "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
            "max_tokens": max_tokens, "temperature": 0, "stream": stream}


async def one(client: httpx.AsyncClient, i: int, kind: str, max_tokens: int) -> dict[str, Any]:
    """One request of ``kind`` (plain, stream, drop); returns its status and timings."""
    started = time.perf_counter()
    out: dict[str, Any] = {"kind": kind}
    if kind == "plain":
        r = await client.post("/v1/chat/completions", json=body(i, max_tokens, False))
        out.update(status=r.status_code, seconds=time.perf_counter() - started)
        return out
    async with client.stream("POST", "/v1/chat/completions", json=body(i, max_tokens, True)) as r:
        out["status"] = r.status_code
        async for line in r.aiter_lines():
            if line.startswith("data: ") and '"content": "' in line and '"content": ""' not in line:
                out.setdefault("first_token_s", time.perf_counter() - started)
                if kind == "drop":  # the client goes away mid-stream
                    out["seconds"] = time.perf_counter() - started
                    return out
            if line == "data: [DONE]":
                out["done"] = True
    out["seconds"] = time.perf_counter() - started
    return out


def kind_of(i: int) -> str:
    return "drop" if i % 10 == 7 else ("stream" if i % 2 else "plain")


async def client_loop(url: str, key: str, c: int, n: int, max_tokens: int, deadline: float) -> list[dict]:
    results = []
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as client:
        for k in range(n):
            if time.time() > deadline:
                break
            i = c * n + k
            try:
                results.append(await one(client, i, kind_of(i), max_tokens))
            except httpx.HTTPError as exc:
                results.append({"kind": kind_of(i), "status": None, "error": repr(exc)})
    return results


async def slot_freed(url: str, key: str, alone_s: float) -> dict[str, Any]:
    """Drop a 2,000-token stream after its first token, then time a short request right after."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as client:
        dropped = await one(client, 0, "drop", 2000)
        started = time.perf_counter()
        r = await client.post("/v1/chat/completions", json=body(1, 8, False))
        after = time.perf_counter() - started
    return {"dropped_status": dropped.get("status"), "next_request_s": round(after, 3),
            "alone_s": round(alone_s, 3), "freed": r.status_code == 200 and after < 5 * alone_s + 2}


async def sample_rss(server: psutil.Process, started: float, samples: list[tuple[float, int]]) -> None:
    """The server's RSS every 10 s: a plateau is buffers kept for reuse, a steady climb is a leak."""
    while True:
        samples.append((round(time.time() - started), round(server.memory_info().rss / 2**20)))
        await asyncio.sleep(10)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3) if s else float("nan")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port, key = free_port(), secrets.token_urlsafe(16)
    url = f"http://127.0.0.1:{port}"
    proc = start_server(args, port, key)
    try:
        await wait_ready(url, proc, args.start_timeout)
        server = psutil.Process(proc.pid)
        alone = [(await client_loop(url, key, 0, 1, args.max_tokens, float("inf")))[0]["seconds"] for _ in range(3)]
        rss_start = server.memory_info().rss
        started = time.time()
        deadline = started + args.max_seconds
        samples: list[tuple[float, int]] = []
        sampler = asyncio.create_task(sample_rss(server, started, samples))
        per_client = await asyncio.gather(*[client_loop(url, key, c, args.requests, args.max_tokens, deadline)
                                            for c in range(args.clients)])
        wall = time.time() - started
        sampler.cancel()
        freed = await slot_freed(url, key, statistics.median(alone))
        rss_end = server.memory_info().rss
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    results = [r for rs in per_client for r in rs]
    completed = [r for r in results if r.get("status") == 200 and r["kind"] != "drop"]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r.get("status"))] = statuses.get(str(r.get("status")), 0) + 1
    latencies = [r["seconds"] for r in completed]
    ttft = [r["first_token_s"] for r in results if "first_token_s" in r]
    return {
        "clients": args.clients, "requests_per_client": args.requests, "max_tokens": args.max_tokens,
        "sent": len(results), "planned": args.clients * args.requests, "wall_s": round(wall, 1),
        "statuses": statuses, "server_errors_5xx": sum(v for k, v in statuses.items() if k.startswith("5")),
        "client_errors": [r["error"] for r in results if "error" in r][:5],
        "dropped_mid_stream": sum(r["kind"] == "drop" for r in results),
        "streams_finished": sum(bool(r.get("done")) for r in results if r["kind"] == "stream"),
        "streams": sum(r["kind"] == "stream" for r in results),
        "latency_s": {"p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99), "max": pct(latencies, 1.0)},
        "first_token_s": {"p50": pct(ttft, 0.5), "p99": pct(ttft, 0.99)},
        "requests_per_s": round(len(completed) / wall, 2) if wall else None,
        "server_rss_mb": {"start": round(rss_start / 2**20), "end": round(rss_end / 2**20),
                          "by_quarter": [samples[min(len(samples) - 1, q * len(samples) // 4)][1] for q in range(5)]
                          if samples else []},
        "slot_freed": freed, "cpu_count": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=100, help="requests per client")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=1200, help="no new request starts after this")
    parser.add_argument("--start-timeout", type=float, default=900)
    parser.add_argument("--log", type=Path, default=Path("api_load_server.log"), help="the server's stderr")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if args.output:
        args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    ok = (report["server_errors_5xx"] == 0 and report["slot_freed"]["freed"] and not report["client_errors"]
          and report["streams_finished"] == report["streams"])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
