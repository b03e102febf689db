"""``tunesmith serve``: an OpenAI-compatible API for a model and any number of LoRA adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunesmith.cli.chat import build_inference_config
from tunesmith.cli.common import ConfigArg, OverridesArg
from tunesmith.utils.console import console

HELP = """Serve a model over an OpenAI-compatible HTTP API (/v1/models, /v1/chat/completions with or without
streaming, /v1/completions). Several LoRA adapters share one base model; a request picks one with its
'model' name. Concurrent requests are batched together. Binds to 127.0.0.1 unless --host says otherwise.

Examples:

  tunesmith serve --adapter saves/quickstart

  tunesmith serve --adapters subjects=saves/quickstart,other=saves/other --api-key secret

  tunesmith serve --model saves/quickstart-export --port 8080

  tunesmith serve --model saves/quickstart-export serve_backend=llama.cpp   # its gguf/*.gguf in llama.cpp

Then, with the official client:  OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="secret")
"""


def serve(
    config: ConfigArg = None,
    overrides: OverridesArg = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Base model, merged folder or .gguf.")] = None,
    adapter: Annotated[Path | None, typer.Option("--adapter", "-a", help="One adapter (served under its folder name).")
                       ] = None,
    adapters: Annotated[str | None, typer.Option(help="More adapters: name=path,name=path.")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    api_key: Annotated[str | None, typer.Option(help="Require 'Authorization: Bearer KEY'.", envvar="TUNESMITH_API_KEY")
                       ] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Most requests per batch.")] = None,
) -> None:
    cfg = build_inference_config(config, overrides, {
        "model_name_or_path": model, "adapter_name_or_path": str(adapter) if adapter else None,
        "adapters": adapters, "host": host, "port": port, "api_key": api_key, "max_batch_size": max_batch_size,
    })
    from tunesmith.serve.backend import choose_backend
    from tunesmith.serve.server import build_app
    from tunesmith.utils.console import status

    backend, why = choose_backend(cfg)
    console.print(f"[dim]backend: {backend} ({why})[/dim]")
    if backend == "vllm":
        from tunesmith.serve.vllm_backend import serve_with_vllm

        raise typer.Exit(serve_with_vllm(cfg))
    import uvicorn

    with status("Loading the GGUF in llama.cpp" if backend == "llama.cpp" else "Loading the model and adapters"):
        app, engine = build_app(cfg)
    url = f"http://{cfg.serve.host}:{cfg.serve.port}/v1"
    batching = "one request at a time (llama.cpp)" if backend == "llama.cpp" else f"batch ≤ {engine.max_batch_size}"
    console.print(f"[bold]tunesmith serve[/bold] · {url} · models: {', '.join(engine.model_names)} · "
                  f"{batching}{' · API key required' if cfg.serve.api_key else ''}")
    if cfg.serve.host not in ("127.0.0.1", "localhost", "::1") and not cfg.serve.api_key:
        console.print("[yellow]Listening beyond this machine without an API key: anyone who can reach it can "
                      "use it.[/yellow]")
    try:
        uvicorn.run(app, host=cfg.serve.host, port=cfg.serve.port, log_level="warning")
    finally:
        engine.stop()


def register(app: typer.Typer) -> None:
    app.command(help=HELP)(serve)
