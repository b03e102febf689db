"""``tunesmith export``: merge an adapter, quantize, and check every artifact against base + adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunesmith.cli.chat import build_inference_config
from tunesmith.cli.common import ConfigArg, OverridesArg
from tunesmith.utils.console import console

HELP = """Merge a LoRA adapter into its base and write a plain Hugging Face folder (sharded safetensors,
tokenizer, chat template, generation_config.json with your temperature / top_p / top_k and every
end-of-turn id), optionally an int8 folder or a GGUF file — then check that each artifact still
answers like base + adapter (same chat-template tokens, same stop ids, same greedy output).

Examples:

  tunesmith export --adapter saves/quickstart --export-dir saves/quickstart-export

  tunesmith export examples/export.yaml export_quantization=gguf-q8_0

  tunesmith export --adapter saves/quickstart --export-dir saves/quickstart-export --check-only
"""


def export(
    config: ConfigArg = None,
    overrides: OverridesArg = None,
    adapter: Annotated[Path | None, typer.Option("--adapter", "-a", help="A run's output_dir (LoRA adapter).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Base model (default: the adapter's).")] = None,
    export_dir: Annotated[Path | None, typer.Option("--export-dir", "-o", help="Where to write.")] = None,
    quantization: Annotated[str | None, typer.Option(
        "--quantization", "-q", help="none, int8, gguf-f16, gguf-q8_0 (gptq-int4, awq-int4 on a GPU).")] = None,
    temperature: Annotated[float | None, typer.Option(help="Default temperature written to generation_config.json.")
                           ] = None,
    top_p: Annotated[float | None, typer.Option(help="Default top_p written to generation_config.json.")] = None,
    top_k: Annotated[int | None, typer.Option(help="Default top_k written to generation_config.json.")] = None,
    check_only: Annotated[bool, typer.Option("--check-only", help="Only re-run the checks on an existing export.")
                          ] = False,
) -> None:
    cfg = build_inference_config(config, overrides, {
        "adapter_name_or_path": str(adapter) if adapter else None, "model_name_or_path": model,
        "export_dir": str(export_dir) if export_dir else None, "export_quantization": quantization,
        "temperature": temperature, "top_p": top_p, "top_k": top_k,
    })
    from tunesmith.export.run import ExportCheckError, check_existing, print_reports, run_export

    try:
        result = check_existing(cfg) if check_only else run_export(cfg)
    except ExportCheckError as exc:
        reports = getattr(exc, "reports", None)
        if reports:
            print_reports(reports)
        raise
    print_reports(result.reports)
    console.print(f"[bold green]{'Checked' if check_only else 'Exported'}[/bold green] {result.export_dir}")
    for name, rel in result.artifacts.items():
        console.print(f"  {name:<10} {result.export_dir / rel}")
    console.print(f"  report     {result.export_dir / 'tunesmith_export.json'}")


def register(app: typer.Typer) -> None:
    app.command(help=HELP)(export)
