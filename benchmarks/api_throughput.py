"""API throughput: tunesmith's batching server against a one-request-at-a-time server, in one run.

Both servers are the same FastAPI app on 127.0.0.1 over the same loaded model; the baseline engine
takes one request at a time (max_batch_size=1), tunesmith's gathers concurrent requests into shared
batches. For 1, 4 and 16 concurrent clients (the official ``openai`` client, greedy, fixed
max_tokens) it reports completed requests per second and generated tokens per second.

    python benchmarks/api_throughput.py                       # the bundled Gemma 3 270M
    python benchmarks/api_throughput.py --adapter saves/quickstart --max-tokens 16 --output bench.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import time
from pathlib import Path
from typing import Any

from tunesmith.config import load_config
from tunesmith.serve.engine import Engine, load_engine
from tunesmith.serve.server import ServerThread, build_app

QUESTIONS = [
    "What is 2 + 3?", "水的化学式是什么？", "Who was the first emperor of Qin?", "长江流入哪个海？",
    "What does the heart do?", "计算 5 × 6。", "Give a synonym for happy.", "电阻为2欧，电流为3安，电压是多少？",
    "Why is the sky blue?", "鲁迅的代表作有哪些？", "Name a prime number above 10.", "光合作用需要什么？",
    "What is the capital of France?", "二氧化碳由哪些元素组成？", "Describe a triangle.", "秦朝在哪一年统一六国？",
]


def run_level(url: str, model: str, clients: int, requests: int, max_tokens: int) -> dict[str, Any]:
    """Send ``requests`` chat completions from ``clients`` concurrent clients; measure throughput."""
    from openai import OpenAI

    client = OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=3600)

    def one(i: int) -> int:
        q = QUESTIONS[i % len(QUESTIONS)]
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": q}],
                                           max_tokens=max_tokens, temperature=0)
        return r.usage.completion_tokens

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        tokens = list(pool.map(one, range(requests)))
    seconds = time.perf_counter() - started
    return {"clients": clients, "requests": requests, "seconds": round(seconds, 2),
            "requests_per_s": round(requests / seconds, 3), "tokens_per_s": round(sum(tokens) / seconds, 2),
            "generated_tokens": sum(tokens)}


def measure(cfg: Any, engine: Engine, levels: list[int], per_client: int, max_tokens: int) -> list[dict[str, Any]]:
    app, _ = build_app(cfg, engine)
    rows = []
    with ServerThread(app) as url:
        run_level(url, engine.base_name, 1, 1, 4)  # warm-up
        for clients in levels:
            rows.append(run_level(url, engine.model_names[-1], clients, clients * per_client, max_tokens))
            print(f"  {clients:>2} clients: {rows[-1]['requests_per_s']:.2f} req/s, "
                  f"{rows[-1]['tokens_per_s']:.1f} tokens/s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--adapter", default=None, help="serve this adapter and send requests to it")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--requests-per-client", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    levels = [int(x) for x in args.clients.split(",")]
    cfg = load_config(None, {"model_name_or_path": args.model, "adapter_name_or_path": args.adapter,
                             "dataset": "unused", "max_batch_size": args.max_batch_size})
    engine = load_engine(cfg)  # loads the model once; the baseline engine below shares it
    baseline = Engine(engine.model, engine.tokenizer, engine.template, engine.stop_ids,
                      base_name=engine.base_name, adapters=engine.adapters, max_batch_size=1).start()
    results: dict[str, Any] = {"model": args.model, "adapter": args.adapter, "max_tokens": args.max_tokens,
                               "dtype": str(next(engine.model.parameters()).dtype)}
    for name, eng in (("one-at-a-time", baseline), ("tunesmith", engine)):
        print(f"{name} server (max_batch_size={eng.max_batch_size}):", flush=True)
        results[name] = measure(cfg, eng, levels, args.requests_per_client, args.max_tokens)
        eng.stop()
    print(f"\nAPI throughput, {args.model}{' + ' + args.adapter if args.adapter else ''}, "
          f"greedy, max_tokens={args.max_tokens}, {results['dtype']}")
    print(f"{'clients':>7} | {'one-at-a-time req/s':>19} {'tok/s':>7} | {'tunesmith req/s':>15} {'tok/s':>7} "
          "| speed-up")
    for base, ours in zip(results["one-at-a-time"], results["tunesmith"]):
        print(f"{base['clients']:>7} | {base['requests_per_s']:>19.2f} {base['tokens_per_s']:>7.1f} | "
              f"{ours['requests_per_s']:>15.2f} {ours['tokens_per_s']:>7.1f} | "
              f"{ours['tokens_per_s'] / max(base['tokens_per_s'], 1e-9):.2f}x")
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))
        print(f"written to {args.output}")


if __name__ == "__main__":
    main()
