"""Training and generation speed benchmarks: tunesmith's path against the usual one, in one run.

Training: for each sequence length, two fresh processes (so each has its own peak RSS) train the
same LoRA on the same batches in the same order for the same number of optimizer steps, taking
turns step by step (so load from anything else on the machine hits both alike), or with
``back_to_back`` one after the other (on an idle machine: taking turns slowed both here, ours more,
0.74 -> 1.0 s per step at seq 128, as each step re-faults memory the other process just freed):

- baseline: transformers ``Trainer`` + peft LoRA, fp32, the model's own loss over full logits,
  batches padded to their longest row by ``DataCollatorForSeq2Seq`` (what a careful user of those
  libraries gets with their defaults);
- tunesmith: ``TunesmithTrainer`` with its defaults (bf16 where supported, loss only at labelled
  positions in chunks, padding removed by packing) and, unless ``compile=False``, the decoder layers
  compiled as ``torch_compile: auto`` does for a long run. The benchmark measures steady-state
  speed; compiling is a one-time cost that lands in the first step, which is excluded for both
  variants as warm-up and reported separately (``first_step_s``).

Same batch size, sequence lengths, LoRA settings (r=8, alpha=16, all linear layers, dropout 0),
learning rate, seed and thread count. Trained tokens are the non-padding tokens of each batch.

FLOPs model used for the roofline share (per non-padding token, LoRA, weights frozen):
``4 * N_body`` (forward 2N, backward input-gradients 2N; N_body = parameters of the transformer
layers) ``+ 6 * n_layers * min(ctx, window) * n_heads * head_dim / 2`` (causal attention, forward
and backward) plus ``4 * vocab * hidden`` per labelled token for the output layer (forward and
input-gradient). LoRA's own matmuls are under 1% and ignored.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SHAPES = (128, 256, 512)
BATCH = 4


def _corpus_ids(tokenizer: Any) -> list[int]:
    """Real text (the shipped example datasets) as token ids, so losses are meaningful.

    Only files that rarely change: the README used to be part of it, and every edit changed the batches.
    """
    root = Path(__file__).resolve().parents[3]
    texts = []
    for p in sorted((root / "examples" / "data").glob("*.json")):
        if p.exists():
            texts.append(p.read_text(encoding="utf-8"))
    if not texts:  # installed without the repo: fall back to a fixed paragraph
        texts = ["The quick brown fox jumps over the lazy dog. 判断下面这道题属于哪个学科。" * 200]
    return tokenizer.encode("\n".join(texts), add_special_tokens=False)


def make_examples(tokenizer: Any, seq_len: int, n: int, seed: int = 0) -> list[dict[str, list[int]]]:
    """A realistic mix: total length 25-100% of seq_len, response 15-60% of it, labels on the response."""
    rng = random.Random(seed + seq_len)
    ids = _corpus_ids(tokenizer)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    out = []
    for _ in range(n):
        total = rng.randint(max(16, seq_len // 4), seq_len)
        resp = max(2, int(total * rng.uniform(0.15, 0.6)))
        start = rng.randrange(0, max(1, len(ids) - total))
        x = (bos + ids[start:start + total])[:total]
        labels = [-100] * (total - resp) + x[total - resp:]
        out.append({"input_ids": x, "labels": labels})
    return out


class _StepTimer:
    """Records wall time per optimizer step and the logged loss."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        timer = self

        class CB(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if timer.lockstep:
                    print("ready", flush=True)

            def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if timer.lockstep:
                    sys.stdin.readline()  # wait for our turn
                timer.t0 = time.perf_counter()

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                timer.times.append(time.perf_counter() - timer.t0)
                if timer.lockstep:
                    print(f"step {timer.times[-1]:.4f}", flush=True)

            def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
                if logs and "loss" in logs:
                    timer.losses.append(float(logs["loss"]))

        self.t0 = 0.0
        self.lockstep = os.environ.get("TUNESMITH_BENCH_LOCKSTEP") == "1"
        self.times: list[float] = []
        self.losses: list[float] = []
        self.callback = CB()


def run_worker(variant: str, seq_len: int, steps: int, model_path: str, compile: bool = True) -> dict[str, Any]:
    """Train ``steps`` optimizer steps with one variant; returns timings, losses and peak RSS."""
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from tunesmith.config.schema import FinetuneArgs
    from tunesmith.model.adapters import apply_finetuning
    from tunesmith.model.load import load_model, load_tokenizer
    from tunesmith.train.collate import PadCollator
    from tunesmith.train.compile import compile_decoder_layers, compiler_available
    from tunesmith.train.runner import TunesmithTrainer, to_dataset
    from tunesmith.utils.hardware import peak_rss_mb, physical_cores, release_memory, resolve_bf16

    torch.set_num_threads(physical_cores())
    torch.manual_seed(0)
    tok = load_tokenizer(model_path)
    rows = make_examples(tok, seq_len, BATCH * steps)
    fast = variant == "tunesmith"
    pad_id = tok.pad_token_id
    if fast:  # tunesmith's training path frees the tokenizer before the model loads (see sft.py)
        del tok
        release_memory()
    bf16 = fast and resolve_bf16(None)[0]
    model = load_model(model_path, dtype=torch.bfloat16 if bf16 else torch.float32)
    model.config.use_cache = False
    model = apply_finetuning(model, FinetuneArgs(lora_rank=8, lora_alpha=16, lora_dropout=0.0))
    compiled = fast and compile and compiler_available() and compile_decoder_layers(model) > 0
    timer = _StepTimer()
    args = TrainingArguments(
        output_dir=os.path.join(os.environ.get("TMPDIR", "/tmp"), f"tunesmith-bench-{variant}-{seq_len}"),
        per_device_train_batch_size=BATCH, max_steps=steps, learning_rate=1e-4, logging_steps=1,
        save_strategy="no", report_to="none", use_cpu=not torch.cuda.is_available(), seed=0, data_seed=0,
        train_sampling_strategy="sequential", remove_unused_columns=False, disable_tqdm=True,
        dataloader_num_workers=0,
    )
    common = dict(model=model, args=args, train_dataset=to_dataset(rows), callbacks=[timer.callback])
    if fast:
        trainer: Any = TunesmithTrainer(**common, data_collator=PadCollator(pad_id), fast_path=True,
                                        bf16=bf16, compiled=compiled)
    else:
        collator = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
        trainer = Trainer(**common, data_collator=lambda feats: collator(
            [{"input_ids": f["input_ids"], "labels": f["labels"]} for f in feats]))
    trainer.train()
    tokens = [sum(len(r["input_ids"]) for r in rows[i * BATCH:(i + 1) * BATCH]) for i in range(steps)]
    labels = [sum(sum(1 for x in r["labels"][1:] if x != -100) for r in rows[i * BATCH:(i + 1) * BATCH])
              for i in range(steps)]
    return {"variant": variant, "seq_len": seq_len, "step_times": timer.times, "losses": timer.losses,
            "tokens": tokens, "label_tokens": labels, "peak_rss_mb": peak_rss_mb(), "bf16": bf16,
            "compiled": compiled}


def compute_precision() -> str:
    """The precision tunesmith's training path computes in on this machine: "bf16" or "fp32"."""
    from tunesmith.utils.hardware import resolve_bf16

    return "bf16" if resolve_bf16(None)[0] else "fp32"


def machine_report() -> dict[str, Any]:
    """What figures must be quoted with: CPU class, torch's kernel ISA, the env caps, the load average."""
    import torch

    from tunesmith.utils.hardware import cpu_class, cpu_flags, isa_caps

    shown = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx_vnni")
    return {"cpu_class": cpu_class(), "cpu_flags": [f for f in shown if f in cpu_flags()],
            "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(), "isa_caps": isa_caps(),
            "threads": torch.get_num_threads(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def measure_matmul_gflops(seconds: float = 2.0, precision: str | None = None) -> float:
    """Matmul throughput at the model's own layer shapes, in the precision training computes in."""
    import torch

    dtype = torch.bfloat16 if (precision or compute_precision()) == "bf16" else torch.float32
    best = 0.0
    for m, k, n in ((1024, 640, 2048), (1024, 2048, 640), (2048, 2048, 2048)):
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        a @ b
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            a @ b
            count += 1
        best = max(best, 2 * m * k * n * count / (time.perf_counter() - t0) / 1e9)
    return best


def flops_per_step(config: Any, tokens: int, label_tokens: int, avg_ctx: float) -> float:
    """The stated FLOPs model (see module docstring)."""
    d, v = config.hidden_size, config.vocab_size
    inter, layers = config.intermediate_size, config.num_hidden_layers
    heads, kv, hd = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    per_layer = d * heads * hd * 2 + d * kv * hd * 2 + 3 * d * inter
    n_body = layers * per_layer
    window = getattr(config, "sliding_window", None) or avg_ctx
    attn = 6 * layers * min(avg_ctx, window) * heads * hd / 2
    return tokens * (4 * n_body + attn) + label_tokens * 4 * v * d


def _worker_env() -> dict[str, str]:
    """The workers' environment: the user's, without the CLI's busy-machine OpenMP guess."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    if env.pop("TUNESMITH_OMP_AUTO", None):
        env.pop("OMP_WAIT_POLICY", None)
    return env


def _run_back_to_back(seq_len: int, steps: int, model_path: str, mode: str,
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the baseline to the end, then tunesmith, each in its own process (nothing else running)."""
    env = _worker_env()
    env.pop("TUNESMITH_BENCH_LOCKSTEP", None)
    results = {}
    for v in ("baseline", "tunesmith"):
        proc = subprocess.run([sys.executable, "-m", "tunesmith.train.benchmark", v, str(seq_len), str(steps),
                               model_path, mode], capture_output=True, text=True, env=env)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"benchmark worker {v}/{seq_len} stopped:\n{proc.stderr[-3000:]}")
        results[v] = json.loads(line[len("RESULT "):])
    return results["baseline"], results["tunesmith"]


def _run_pair(seq_len: int, steps: int, model_path: str, mode: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run baseline and tunesmith in two processes that take turns, one optimizer step each.

    Each process has its own peak memory; taking turns means whatever else the machine is doing
    slows both the same way, so the ratio stays fair on a busy machine.
    """
    env = {**_worker_env(), "TUNESMITH_BENCH_LOCKSTEP": "1"}
    if "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
        # The worker that waits for its turn must go quiet at once: OpenMP's default spin-wait would
        # steal the other worker's cores for the first part of its step. A short spin keeps each
        # worker's own speed (measured: 0.93 vs 0.92 s per step alone) without that interference.
        env["GOMP_SPINCOUNT"] = "10000"
    import tempfile

    logs = {v: tempfile.TemporaryFile(mode="w+") for v in ("baseline", "tunesmith")}
    procs = {
        v: subprocess.Popen([sys.executable, "-m", "tunesmith.train.benchmark", v, str(seq_len), str(steps),
                             model_path, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logs[v],
                            text=True, env=env)
        for v in ("baseline", "tunesmith")
    }

    def expect(v: str, prefix: str) -> str:
        p = procs[v]
        while True:
            line = p.stdout.readline() if p.stdout else ""
            if not line:
                p.wait()
                logs[v].seek(0)
                err = logs[v].read()
                raise RuntimeError(f"benchmark worker {v}/{seq_len} stopped:\n{err[-3000:]}")
            if line.startswith(prefix):
                return line

    try:
        for v in procs:
            expect(v, "ready")
        for _ in range(steps):
            for v, p in procs.items():
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
                expect(v, "step")
        results = {v: json.loads(expect(v, "RESULT ")[len("RESULT "):]) for v in procs}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        for f in logs.values():
            f.close()
    return results["baseline"], results["tunesmith"]


def summarize(base: dict[str, Any], ours: dict[str, Any], config: Any, gflops: float) -> dict[str, Any]:
    """Per-shape figures; the first step is warm-up and excluded from speed."""
    def rate(r: dict[str, Any]) -> tuple[float, float]:
        t = sum(r["step_times"][1:])
        return sum(r["tokens"][1:]) / t, t / max(1, len(r["step_times"]) - 1)

    b_tps, b_sps = rate(base)
    o_tps, o_sps = rate(ours)
    diffs = [abs(a - b) for a, b in zip(base["losses"], ours["losses"])]
    steps = len(ours["step_times"]) - 1
    avg_ctx = sum(ours["tokens"][1:]) / max(1, steps) / BATCH / 2
    flops = sum(flops_per_step(config, t, lab, avg_ctx) for t, lab in
                zip(ours["tokens"][1:], ours["label_tokens"][1:]))
    achieved = flops / sum(ours["step_times"][1:]) / 1e9
    return {
        "seq_len": ours["seq_len"],
        "baseline_tokens_per_s": round(b_tps, 1), "tokens_per_s": round(o_tps, 1),
        "speedup": round(o_tps / b_tps, 2),
        "baseline_s_per_step": round(b_sps, 2), "s_per_step": round(o_sps, 2),
        "baseline_peak_rss_mb": round(base["peak_rss_mb"]), "peak_rss_mb": round(ours["peak_rss_mb"]),
        "memory_ratio": round(ours["peak_rss_mb"] / base["peak_rss_mb"], 3),
        "max_loss_diff": round(max(diffs), 4) if diffs else None,
        "baseline_losses": [round(x, 4) for x in base["losses"]],
        "losses": [round(x, 4) for x in ours["losses"]],
        "achieved_gflops": round(achieved, 1),
        "roofline_fraction": round(achieved / gflops, 3) if gflops else None,
        "baseline_first_step_s": round(base["step_times"][0], 2), "first_step_s": round(ours["step_times"][0], 2),
        "compiled": bool(ours.get("compiled")),
    }


def bench_train(model_path: str, shapes: tuple[int, ...] = SHAPES, steps: int = 6,
                log: Any = print, back_to_back: bool = False, compile: bool = True) -> dict[str, Any]:
    """Run baseline and tunesmith for each shape; returns the JSON the CLI prints and saves."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path)
    precision = compute_precision()
    machine = machine_report()
    gflops = measure_matmul_gflops(precision=precision)
    log(f"{machine['cpu_class']}: measured {precision} matmul throughput {gflops:.0f} GFLOP/s "
        f"(torch kernels {machine['aten_cpu_capability']}, load average {machine['load_average'][0]})")
    results = []
    for seq_len in shapes:
        run = _run_back_to_back if back_to_back else _run_pair
        base, ours = run(seq_len, steps, model_path, "compile" if compile else "eager")
        log(f"  seq {seq_len}: baseline {sum(base['step_times'][1:]):.0f}s, "
            f"tunesmith {sum(ours['step_times'][1:]):.0f}s for {steps - 1} timed steps "
            f"(first step: {base['step_times'][0]:.1f}s vs {ours['step_times'][0]:.1f}s"
            f"{', compiling' if ours.get('compiled') else ''})")
        results.append(summarize(base, ours, config, gflops))
        r = results[-1]  # printed as it comes: a later shape can still fail (e.g. run out of memory)
        log(f"  seq {seq_len}: {r['speedup']:.2f}x ({r['baseline_tokens_per_s']} -> {r['tokens_per_s']} tokens/s), "
            f"memory {r['baseline_peak_rss_mb']} -> {r['peak_rss_mb']} MB ({r['memory_ratio']:.2f}), max loss diff "
            f"{r['max_loss_diff']}, load average {os.getloadavg()[0]:.1f}")
    fractions = [r["roofline_fraction"] for r in results if r["roofline_fraction"] is not None]
    mode = "back-to-back" if back_to_back else "lockstep"
    machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return {"shapes": results, "matmul_gflops": round(gflops, 1), "matmul_precision": precision,
            "machine": machine, "mode": mode,
            "roofline_fraction": round(sum(fractions) / len(fractions), 3) if fractions else None,
            "steps": steps, "batch_size": BATCH}


def _timed(run: Any) -> tuple[int, float]:
    t0 = time.perf_counter()
    outs = run()
    return sum(len(o) for o in outs), time.perf_counter() - t0


def generation_questions(n: int) -> list[str]:
    """The questions ``bench generate`` asks (4-20 words each, English and Chinese, seeded)."""
    rng = random.Random(0)
    words = ["math", "history", "explain", "photosynthesis", "计算", "诗歌", "river", "energy", "story", "why"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 20))) for _ in range(n)]


def _row(name: str, mode: str, prompts: int, tokens: int, seconds: float, log: Any) -> dict[str, Any]:
    log(f"  {name}, {mode}: {tokens / seconds:.1f} tokens/s")
    return {"backend": name, "mode": mode, "prompts": prompts, "tokens": tokens, "seconds": round(seconds, 1),
            "tokens_per_s": round(tokens / seconds, 1)}


def _llama_cpp_rows(gguf: str | None, prompts: list[list[int]], stop: list[int], settings: Any,
                    engines: dict[str, Any], log: Any) -> list[dict[str, Any]]:
    """Raw llama.cpp on ``gguf`` (the main thread) and each engine row (its own thread), one prompt at a time.

    Measured before any transformers row, as chat and serve run (nothing else in the process has run
    OpenMP work): an engine thread started after the main thread had run OpenMP work (torch, or llama.cpp
    itself) generated at 18-22 tokens/s here against 32-38 in the main thread, and at 33-35 when first."""
    from tunesmith.model import llama_cpp
    from tunesmith.utils.errors import TunesmithError

    if not gguf or not llama_cpp.available():
        if not llama_cpp.available():
            log("  llama.cpp: not measured (bash scripts/install_llamacpp.sh installs llama-cpp-python)")
        return []
    try:
        llama_cpp.check_build()
    except TunesmithError as exc:  # a llama.cpp build that would crash
        log(f"  llama.cpp: not measured ({exc.message})")
        return []
    rows, outputs = [], {}
    for name, make in engines.items():
        engine = make(stop)
        try:
            t0 = time.perf_counter()
            outputs[name] = [engine.generate(p, settings).tokens for p in prompts]
            seconds = time.perf_counter() - t0
        finally:
            engine.stop()
        rows.append(_row(name, "single-stream", len(prompts), sum(map(len, outputs[name])), seconds, log))
    with llama_cpp.LlamaCppGenerator(gguf) as gen:
        t0 = time.perf_counter()
        raw = gen.generate_ids(prompts, stop_ids=stop, settings=settings)
        rows.insert(0, _row(llama_cpp.describe(gen), "single-stream", len(prompts), sum(map(len, raw)),
                            time.perf_counter() - t0, log))
    for row in rows[1:]:
        row["same_tokens_as_raw_llama_cpp"] = outputs[row["backend"]] == raw
        log(f"  {row['backend']}: same tokens as raw llama.cpp: {row['same_tokens_as_raw_llama_cpp']}")
    return rows


def bench_generate(model_path: str, n_prompts: int = 64, max_new_tokens: int = 32,
                   batch_size: int = 16, log: Any = print, gguf: str | None = None,
                   single_prompts: int = 16, engines: dict[str, Any] | None = None) -> dict[str, Any]:
    """Greedy generation of the same prompts by each backend, in one run.

    Baseline: ``model.generate`` one prompt at a time in fp32. tunesmith: its batched path and, as chat
    and a lone API client feel it, one prompt at a time (the first ``single_prompts`` prompts), in the
    precision it computes in here. llama.cpp (when llama-cpp-python is installed): the same prompt
    token ids, one at a time, on ``gguf`` (the same model as a GGUF file; the CLI passes the bundled
    Q4_K_M file for the bundled model). ``engines``: more single-stream rows, name -> a function that takes
    the stop ids and returns a started engine with serve.engine's ``generate(prompt, settings)`` and
    ``stop()`` (the CLI passes tunesmith's llama.cpp chat / serve engine on ``gguf``, which lives in a
    higher layer); each gets the single-stream prompts one at a time, its load not timed, and says
    whether its tokens equal the raw llama.cpp row's.
    """
    import torch

    from tunesmith.data.records import Message
    from tunesmith.data.templates import get_template
    from tunesmith.data.tokenize import encode_prompt
    from tunesmith.model.generate import GenerationSettings, generate_ids
    from tunesmith.model.load import end_token_ids, load_model, load_tokenizer
    from tunesmith.utils.hardware import cpu_class, resolve_bf16

    tok = load_tokenizer(model_path)
    tmpl = get_template("gemma")
    prompts = [encode_prompt([Message("user", q)], None, tmpl, tok) for q in generation_questions(n_prompts)]
    stop = end_token_ids(tok, tmpl.stop_words)
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    single = prompts[:single_prompts]
    backends: list[dict[str, Any]] = []

    def record(name: str, mode: str, tokens: int, seconds: float) -> None:
        prompts_run = len(single) if mode == "single-stream" and "baseline" not in name else n_prompts
        backends.append(_row(name, mode, prompts_run, tokens, seconds, log))

    llama_rows = _llama_cpp_rows(gguf, single, stop, settings, engines or {}, log)
    base = load_model(model_path, dtype=torch.float32)

    def one_at_a_time() -> list[list[int]]:
        outs = []
        for p in prompts:
            with torch.inference_mode():
                out = base.generate(input_ids=torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                                    max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
                                    pad_token_id=tok.pad_token_id)
            outs.append(out[0, len(p):].tolist())
        return outs

    base_tokens, base_s = _timed(one_at_a_time)
    record("transformers model.generate fp32 (baseline)", "single-stream", base_tokens, base_s)
    base = None  # freed before the next model loads
    bf16 = resolve_bf16(None)[0]
    precision = "bf16" if bf16 else "fp32"
    fast = load_model(model_path, dtype=torch.bfloat16 if bf16 else torch.float32)
    fast_tokens, fast_s = _timed(lambda: generate_ids(fast, prompts, stop_ids=stop, pad_id=tok.pad_token_id,
                                                      settings=settings, batch_size=batch_size))
    record(f"tunesmith {precision}", f"batched ({batch_size})", fast_tokens, fast_s)
    n, sec = _timed(lambda: generate_ids(fast, single, stop_ids=stop, pad_id=tok.pad_token_id, settings=settings,
                                         batch_size=1))
    record(f"tunesmith {precision}", "single-stream", n, sec)
    fast = None
    backends += llama_rows  # measured first (see _llama_cpp_rows), shown after the transformers rows
    return {"prompts": n_prompts, "max_new_tokens": max_new_tokens, "batch_size": batch_size,
            "cpu_class": cpu_class(), "backends": backends,
            "baseline_tokens_per_s": round(base_tokens / base_s, 1), "tokens_per_s": round(fast_tokens / fast_s, 1),
            "speedup": round((fast_tokens / fast_s) / (base_tokens / base_s), 2),
            "baseline_seconds": round(base_s, 1), "seconds": round(fast_s, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


if __name__ == "__main__":  # worker: python -m tunesmith.train.benchmark VARIANT SEQ_LEN STEPS MODEL_PATH [eager]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    res = run_worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                     compile=sys.argv[5:6] != ["eager"])
    print("RESULT " + json.dumps(res), flush=True)
