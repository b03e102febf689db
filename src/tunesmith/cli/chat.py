"""``tunesmith chat``: a streaming, multi-turn chat in the terminal with the training template."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tunesmith.cli.common import ConfigArg, OverridesArg, build
from tunesmith.utils.console import console

HELP = """Chat with a model: base, base + adapter, or a merged folder. Uses the run's own template.

Commands inside the chat: /reset clears the history, /system TEXT sets the system prompt, /exit quits.

Examples:

  tunesmith chat --adapter saves/quickstart

  tunesmith chat --model path/to/merged --temperature 0.7
"""


def chat(
    config: ConfigArg = None,
    overrides: OverridesArg = None,
    adapter: Annotated[Path | None, typer.Option("--adapter", "-a", help="A run's output_dir (LoRA adapter).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Base or merged model (default: bundled).")] = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="System prompt.")] = None,
    temperature: Annotated[float | None, typer.Option(help="0 = greedy.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling.")] = None,
    top_k: Annotated[int | None, typer.Option(help="Top-k sampling (0 = off).")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Most tokens per reply.")] = None,
) -> None:
    cfg = build(config, overrides, {
        "adapter_name_or_path": str(adapter) if adapter else None, "model_name_or_path": model,
        "temperature": temperature, "top_p": top_p, "top_k": top_k, "max_new_tokens": max_new_tokens,
    })
    from tunesmith.data.records import Message
    from tunesmith.data.tokenize import encode_prompt
    from tunesmith.model.generate import GenerationSettings, stream_ids
    from tunesmith.train.resolve import load_inference_model
    from tunesmith.utils.console import status

    with status("Loading the model"):
        loaded = load_inference_model(cfg)
    e = cfg.eval
    settings = GenerationSettings(e.max_new_tokens, e.temperature, e.top_p, e.top_k, e.repetition_penalty)
    tok = loaded.tokenizer
    name = loaded.adapter_path or loaded.base_path
    console.print(f"[bold]tunesmith chat[/bold] · {name} · template [cyan]{loaded.template.name}[/cyan] · "
                  "/reset /system TEXT /exit")
    history: list[Message] = []
    while True:
        try:
            console.print("[bold blue]You:[/bold blue] ", end="")
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            break
        if not line:  # end of input
            break
        text = line.rstrip("\n")
        if not text.strip():
            continue
        if text.strip() in ("/exit", "/quit"):
            break
        if text.strip() == "/reset":
            history = []
            console.print("[dim]history cleared[/dim]")
            continue
        if text.startswith("/system"):
            system = text[len("/system"):].strip() or None
            history = []
            console.print(f"[dim]system prompt {'set' if system else 'cleared'}; history cleared[/dim]")
            continue
        history.append(Message("user", text))
        prompt = encode_prompt(history, system, loaded.template, tok)
        console.print("[bold green]Model:[/bold green] ", end="")
        shown = ""
        for ids in stream_ids(loaded.model, prompt, stop_ids=loaded.stop_ids, pad_id=tok.pad_token_id,
                              settings=settings):
            full = tok.decode(ids, skip_special_tokens=True)
            if full.startswith(shown):
                sys.stdout.write(full[len(shown):])
                sys.stdout.flush()
            shown = full
        sys.stdout.write("\n")
        history.append(Message("assistant", shown))


def register(app: typer.Typer) -> None:
    app.command(help=HELP)(chat)
