"""``tunesmith chat``: a streaming, multi-turn chat in the terminal with the training template."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tunesmith.cli.common import ConfigArg, OverridesArg, build
from tunesmith.config.schema import Config
from tunesmith.utils.console import console

HELP = """Chat with a model: the bundled base, base + adapter, a merged folder or a GGUF file. Uses the
template the model was trained with; replies stream as they are generated.

Commands inside the chat: /reset clears the history, /system TEXT sets the system prompt, /exit quits.

Examples:

  tunesmith chat --adapter saves/quickstart

  tunesmith chat --model saves/quickstart-export --temperature 0.7 --top-p 0.9

  tunesmith chat --model saves/quickstart-export/gguf/quickstart-export-q8_0.gguf --system "Answer in one word."

  tunesmith chat --model saves/quickstart-export serve_backend=llama.cpp   # the export's GGUF in llama.cpp
"""


def build_inference_config(config: Path | None, overrides: list[str] | None, extra: dict[str, Any]) -> Config:
    """A config for commands that use a model but train nothing (chat, export, serve).

    The training rule 'a dataset is required' does not apply here; every other problem is reported.
    A merged folder written by ``tunesmith export`` brings its template name along.
    """
    values = {k: v for k, v in extra.items() if v is not None}
    cfg = build(config, overrides, values, require_data=False)
    model = Path(cfg.model.model_name_or_path)
    manifest = model / "tunesmith_export.json"
    if cfg.model.template == "auto" and model.is_dir() and manifest.exists():
        cfg.model.template = json.loads(manifest.read_text()).get("template", "auto")
    return cfg


def chat(
    config: ConfigArg = None,
    overrides: OverridesArg = None,
    adapter: Annotated[Path | None, typer.Option("--adapter", "-a", help="A run's output_dir (LoRA adapter).")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Base model, merged folder or .gguf file (default: bundled).")] = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="System prompt.")] = None,
    temperature: Annotated[float | None, typer.Option(help="0 = greedy.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling.")] = None,
    top_k: Annotated[int | None, typer.Option(help="Top-k sampling (0 = off).")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Most tokens per reply.")] = None,
    repetition_penalty: Annotated[float | None, typer.Option(help="> 1 discourages repeats.")] = None,
    image: Annotated[list[Path] | None, typer.Option(
        "--image", help="Vision models: an image shown with the first question (repeat for several).")] = None,
) -> None:
    cfg = build_inference_config(config, overrides, {
        "adapter_name_or_path": str(adapter) if adapter else None, "model_name_or_path": model,
        "temperature": temperature, "top_p": top_p, "top_k": top_k, "max_new_tokens": max_new_tokens,
        "repetition_penalty": repetition_penalty,
    })
    from tunesmith.model.generate import generation_settings
    from tunesmith.serve.backend import choose_backend
    from tunesmith.serve.chat import COMMANDS_HELP, ChatSession, run_chat

    backend, why = choose_backend(cfg, chat=True)
    console.print(f"[dim]backend: {backend} ({why})[/dim]")
    loaded, engine = _load(cfg, backend, image)
    settings, _ = generation_settings(cfg, loaded.model)  # flags > config > the model's generation_config
    name = loaded.adapter_path or cfg.model.model_name_or_path
    console.print(f"[bold]tunesmith chat[/bold] · {name} · template [cyan]{loaded.template.name}[/cyan] · "
                  f"{COMMANDS_HELP}")

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    processor = None if engine is not None else _processor(cfg, loaded, image)
    try:
        run_chat(ChatSession(loaded, settings, system, processor=processor, images=[str(p) for p in image or []],
                             engine=engine), sys.stdin.readline, write)
    except KeyboardInterrupt:
        write("\n")
    finally:
        if engine is not None:
            engine.stop()


def _load(cfg: Config, backend: str, images: list[Path] | None) -> tuple[Any, Any]:
    """(what ChatSession reads, the llama.cpp engine or None): the GGUF in llama.cpp, else the torch model."""
    from tunesmith.utils.console import status

    if backend == "llama.cpp":
        from tunesmith.serve.llama_cpp import load_llama_cpp_engine
        from tunesmith.utils.errors import ConfigError

        if images:
            raise ConfigError(["'--image': the llama.cpp backend reads text only; chat about images with a "
                               "vision-language model on serve_backend=transformers"])
        with status("Loading the GGUF in llama.cpp"):
            engine = load_llama_cpp_engine(cfg)
        return engine.loaded(), engine
    from tunesmith.inference.load import load_inference_model

    with status("Loading the model"):
        return load_inference_model(cfg), None

def _processor(cfg: Config, loaded: Any, images: list[Path] | None) -> Any:
    """A vision model's processor when images are given (None for text-only models: the session says so)."""
    if not images:
        return None
    from tunesmith.data.media import check_media
    from tunesmith.data.records import Message, SFTExample
    from tunesmith.model.vision import is_vision_model, load_processor

    marks = "<image>" * len(images)
    check_media([SFTExample([Message("user", marks)], images=[str(p) for p in images])], name="--image")
    return load_processor(loaded.base_path, cfg.data) if is_vision_model(loaded.base_path) else None


def register(app: typer.Typer) -> None:
    app.command(help=HELP)(chat)
