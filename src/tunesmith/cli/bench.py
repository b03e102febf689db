"""``tunesmith bench``: measure training and generation speed against the usual path, in one run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tunesmith.utils.console import console

bench_app = typer.Typer(help="Speed benchmarks: tunesmith vs the usual Trainer+PEFT / generate path.",
                        no_args_is_help=True)

TRAIN_HELP = """Training throughput, memory and loss agreement: baseline vs tunesmith.

Baseline: transformers Trainer + peft LoRA, fp32, full-vocabulary loss, padded batches.
tunesmith: its training path with defaults, decoder layers compiled as a long run does
(--no-compile for eager). Same batches, steps, seed, LoRA and threads; each variant runs
in its own process so peak memory is its own. The first step (warm-up, and the one-time
compile) is excluded from speed for both and printed separately.

Examples:

  tunesmith bench train --quick

  tunesmith bench train --output bench.json
"""


def _model(model: str) -> str:
    from tunesmith.model.load import resolve_model_path

    return resolve_model_path(model)


@bench_app.command("train", help=TRAIN_HELP)
def train(
    model: Annotated[str, typer.Option(help="Model to benchmark.")] = "gemma-3-270m",
    steps: Annotated[int | None, typer.Option(help="Optimizer steps per run (first is warm-up).")] = None,
    shapes: Annotated[str, typer.Option(help="Sequence lengths, comma-separated.")] = "128,256,512",
    quick: Annotated[bool, typer.Option(help="Fewer steps (about 5 minutes here).")] = False,
    output: Annotated[Path | None, typer.Option(help="Write the figures as JSON.")] = None,
    back_to_back: Annotated[bool, typer.Option(
        "--back-to-back", help="Run baseline then tunesmith one after the other instead of taking turns "
        "step by step (fairer on an idle machine; taking turns is fairer on a busy one).")] = False,
    compile: Annotated[bool, typer.Option(
        "--compile/--no-compile", help="Compile tunesmith's decoder layers, as torch_compile=auto does for "
        "long runs (the one-time compile lands in the excluded first step).")] = True,
) -> None:
    from rich.table import Table

    from tunesmith.train.benchmark import bench_train
    from tunesmith.utils.io import write_json

    n_steps = steps or (3 if quick else 6)
    result = bench_train(_model(model), tuple(int(s) for s in shapes.split(",")), n_steps,
                         log=lambda m: console.print(f"[dim]{m}[/dim]"), back_to_back=back_to_back,
                         compile=compile)
    compiled = any(r["compiled"] for r in result["shapes"])
    table = Table(title=f"Training, LoRA r=8 all-linear, batch 4, {n_steps} steps (first excluded), {result['mode']}"
                  f", tunesmith {'compiled' if compiled else 'eager'}",
                  title_justify="left")
    for col in ("seq", "baseline tok/s", "tunesmith tok/s", "speed-up", "s/step base→ours",
                "peak RSS base→ours MB", "memory ratio", "max loss diff", "roofline", "first step base→ours"):
        table.add_column(col, justify="right")
    for r in result["shapes"]:
        table.add_row(str(r["seq_len"]), f"{r['baseline_tokens_per_s']:.1f}", f"{r['tokens_per_s']:.1f}",
                      f"[bold]{r['speedup']:.2f}x[/bold]", f"{r['baseline_s_per_step']:.2f}→{r['s_per_step']:.2f}",
                      f"{r['baseline_peak_rss_mb']}→{r['peak_rss_mb']}", f"{r['memory_ratio']:.2f}",
                      f"{r['max_loss_diff']:.4f}", f"{100 * (r['roofline_fraction'] or 0):.0f}%",
                      f"{r['baseline_first_step_s']:.1f}→{r['first_step_s']:.1f} s")
    console.print(table)
    m = result["machine"]
    caps = ", ".join(f"{k}={v}" for k, v in m["isa_caps"].items()) or "none"
    console.print(f"{m['cpu_class']} (flags {' '.join(m['cpu_flags'])}; torch kernels {m['aten_cpu_capability']}; "
                  f"ISA caps from the environment: {caps}); load average {m['load_average'][0]} at the start, "
                  f"{m['load_average_end'][0]} at the end")
    console.print(f"{result['matmul_precision']} matmul peak measured in this run (the precision tunesmith computes "
                  f"in here): {result['matmul_gflops']:.0f} GFLOP/s; tunesmith reaches "
                  f"{100 * (result['roofline_fraction'] or 0):.0f}% of it on average")
    for r in result["shapes"]:
        console.print(f"[dim]seq {r['seq_len']} losses  baseline {r['baseline_losses']}\n"
                      f"                 tunesmith {r['losses']}[/dim]")
    if output:
        write_json(output, result)
        console.print(f"wrote {output}")


GENERATE_HELP = """Greedy generation speed of each backend on the same prompts, in one run: model.generate one
prompt at a time in fp32 (baseline), tunesmith batched and single-stream (as chat feels it), and, when
llama-cpp-python is installed, llama.cpp single-stream on a GGUF file, raw and through tunesmith's
chat / serve engine (serve_backend=llama.cpp).

Examples:

  tunesmith bench generate

  tunesmith bench generate --gguf saves/quickstart-export/model-Q4_K_M.gguf --output generate.json
"""


@bench_app.command("generate", help=GENERATE_HELP)
def generate(
    model: Annotated[str, typer.Option(help="Model to benchmark.")] = "gemma-3-270m",
    prompts: Annotated[int, typer.Option(help="Number of prompts.")] = 64,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per answer.")] = 32,
    batch_size: Annotated[int, typer.Option(help="Batch size of the batched path.")] = 16,
    single_prompts: Annotated[int, typer.Option(help="Prompts for the single-stream figures.")] = 16,
    gguf: Annotated[str | None, typer.Option(help="GGUF file for llama.cpp (default: the bundled Q4_K_M).")] = None,
    output: Annotated[Path | None, typer.Option(help="Write the figures as JSON.")] = None,
) -> None:
    from rich.table import Table

    from tunesmith.model.llama_cpp import bundled_gguf
    from tunesmith.model.load import DEFAULT_ALIASES
    from tunesmith.train.benchmark import bench_generate
    from tunesmith.utils.io import write_json

    path = _model(model)  # assembles the bundled GGUF on first use
    if gguf is None and model in DEFAULT_ALIASES:
        gguf = str(bundled_gguf() or "") or None
    r = bench_generate(path, prompts, max_new_tokens, batch_size, gguf=gguf, single_prompts=single_prompts,
                       log=lambda m: console.print(f"[dim]{m}[/dim]"), engines=_llama_cpp_engine_row(gguf))
    table = Table(title=f"Generation, greedy, {max_new_tokens} new tokens per prompt, {r['cpu_class']}, "
                  f"load average {r['load_average'][0]}", title_justify="left")
    for col in ("backend", "mode", "prompts", "tokens", "seconds", "tokens/s"):
        table.add_column(col, justify="right" if col not in ("backend", "mode") else "left")
    for b in r["backends"]:
        table.add_row(b["backend"], b["mode"], str(b["prompts"]), str(b["tokens"]), f"{b['seconds']:.1f}",
                      f"[bold]{b['tokens_per_s']:.1f}[/bold]")
    console.print(table)
    console.print(f"tunesmith batched vs the baseline: speed-up [bold]{r['speedup']:.2f}x[/bold]")
    if output:
        write_json(output, r)


def _llama_cpp_engine_row(gguf: str | None) -> dict[str, Any]:
    """The chat / serve llama.cpp engine on ``gguf`` as a bench row (none without the file or llama-cpp-python)."""
    from tunesmith.model import llama_cpp

    if not gguf or not llama_cpp.available():
        return {}

    def make(stop_ids: list[int]) -> Any:
        from tunesmith.serve.llama_cpp import LlamaCppEngine

        generator = llama_cpp.LlamaCppGenerator(gguf, fit_threads=True)  # as chat and serve run it
        return LlamaCppEngine(generator, None, None, stop_ids, base_name="bench").start()

    return {"tunesmith llama.cpp (chat/serve engine)": make}


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
