"""Single-stream speed of each path a user meets on serve_backend llama.cpp, in one run, on one GGUF.

On the same questions as ``tunesmith bench generate`` (greedy, one at a time): tunesmith's llama.cpp
engine (what chat and the API run), a ``ChatSession`` on it (text decoded and streamed as ``tunesmith
chat`` does), the API on 127.0.0.1 (one client, streaming chat completions with httpx), and raw
llama.cpp on the file (``LlamaCppGenerator``, the bench's llama.cpp row). The engine's tokens and the
API's token counts are compared with the raw row's (greedy: they should be equal).

    python benchmarks/llama_cpp_paths.py --model saves/quickstart-export      # an export holding a GGUF
    python benchmarks/llama_cpp_paths.py --model ~/.cache/tunesmith/gguf/gemma-3-270m-q4_k_m.gguf
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

from tunesmith.config import load_config
from tunesmith.data.records import Message
from tunesmith.data.tokenize import encode_prompt
from tunesmith.model.generate import GenerationSettings
from tunesmith.model.llama_cpp import LlamaCppGenerator
from tunesmith.serve.chat import ChatSession
from tunesmith.serve.llama_cpp import load_llama_cpp_engine
from tunesmith.serve.server import ServerThread, build_app
from tunesmith.train.benchmark import generation_questions
from tunesmith.utils.hardware import cpu_class


def _row(name: str, tokens: int, seconds: float, same: bool | None) -> dict[str, Any]:
    row = {"path": name, "tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1),
           "same_tokens_as_raw": same}
    print(f"  {name}: {row['tokens_per_s']} tokens/s ({tokens} tokens, {seconds:.1f} s), same tokens: {same}")
    return row


def _api(url: str, model: str, questions: list[str], max_tokens: int) -> tuple[list[int], float]:
    counts = []
    t0 = time.perf_counter()
    for q in questions:
        body = {"model": model, "messages": [{"role": "user", "content": q}], "max_tokens": max_tokens,
                "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=600) as r:
            for line in r.iter_lines():
                if line.startswith("data: {") and '"usage"' in line:
                    counts.append(json.loads(line[6:])["usage"]["completion_tokens"])
    return counts, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="A .gguf file or an export folder holding one.")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    cfg = load_config(None, {"model_name_or_path": args.model, "template": "gemma", "dataset": "unused",
                             "serve_backend": "llama.cpp", "max_new_tokens": args.max_new_tokens})
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    questions = generation_questions(args.prompts)
    rows = []
    engine = load_llama_cpp_engine(cfg)
    prompts = [encode_prompt([Message("user", q)], None, engine.template, engine.tokenizer) for q in questions]
    print(f"{engine.generator.path.name}, {cpu_class()}, load average {os.getloadavg()[0]:.2f}")
    # The engine's rows first, raw llama.cpp (main thread) last: a second OpenMP thread team in the process
    # (the engine thread's, after the main thread's) ran 40% slower here; chat and serve compute in the
    # engine thread only.
    t0 = time.perf_counter()
    ours = [engine.generate(p, settings).tokens for p in prompts]
    rows.append(_row("tunesmith llama.cpp engine", sum(map(len, ours)), time.perf_counter() - t0, None))
    before, t0 = engine.stats.generated_tokens, time.perf_counter()
    for q in questions:
        session = ChatSession(engine.loaded(), settings, engine=engine)
        "".join(session.send(q))
    rows.append(_row("ChatSession (tunesmith chat)", engine.stats.generated_tokens - before,
                     time.perf_counter() - t0, None))
    app, _ = build_app(cfg, engine)
    with ServerThread(app) as url:
        counts, seconds = _api(url, engine.base_name, questions, args.max_new_tokens)
    rows.append(_row("API, one streaming client", sum(counts), seconds, None))
    engine.stop()
    with LlamaCppGenerator(engine.generator.path, n_ctx=engine.generator.n_ctx) as raw_gen:
        t0 = time.perf_counter()
        raw = raw_gen.generate_ids(prompts, stop_ids=engine.stop_ids, settings=settings)
        rows.append(_row("raw llama.cpp", sum(map(len, raw)), time.perf_counter() - t0, None))
    rows[0]["same_tokens_as_raw"] = ours == raw
    rows[2]["same_tokens_as_raw"] = counts == [len(o) for o in raw]
    print(f"  the engine's tokens equal raw llama.cpp's: {ours == raw}; "
          f"the API's counts: {rows[2]['same_tokens_as_raw']}")
    result = {"gguf": str(engine.generator.path), "cpu_class": cpu_class(), "prompts": args.prompts,
              "max_new_tokens": args.max_new_tokens, "rows": rows,
              "load_average_end": [round(x, 2) for x in os.getloadavg()]}
    if args.output:
        args.output.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
