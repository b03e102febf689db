"""``tunesmith eval`` (score, compare, judge, benchmark) and ``tunesmith diagnose`` (the loss curve)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tunesmith.cli.common import OverridesArg, build
from tunesmith.utils.console import console

EVAL_HELP = """Score a model on a dataset split: predictions.jsonl, metrics.json and a report.

Takes the config you trained with: without adapter_name_or_path it scores the finished run in
output_dir (else the base model). Metrics (0-100): rouge-1, rouge-2, rouge-l, bleu-4 (jieba words
for Chinese), exact_match, rouge-l>=0.99, similarity (MiniLM); and perplexity of the references.
Generation settings come from the config (max_new_tokens, temperature, top_p, top_k), else from the
model's generation config. Set judge_endpoint (and judge_model, judge_rubric) to add an LLM judge.

Files go to eval_output_dir (default: RUN/eval).

Examples:

  tunesmith eval examples/quickstart.yaml

  tunesmith eval examples/quickstart.yaml --compare base,saves/quickstart max_new_tokens=32

  tunesmith eval examples/quickstart.yaml eval_split=val eval_samples=20 temperature=0.7 top_p=0.9

  tunesmith eval examples/quickstart.yaml judge_endpoint=http://127.0.0.1:8000/v1 judge_rubric=rubric.txt

  tunesmith eval --predictions generated_predictions.jsonl

  tunesmith eval examples/quickstart.yaml --benchmark examples/benchmarks/ceval_sample n_shot=5

  tunesmith eval examples/quickstart.yaml --benchmark examples/benchmarks/mmlu_sample --compare base,saves/quickstart
"""

DIAGNOSE_HELP = """Read a run's training log and say which loss-curve case applies, with evidence.

Cases (from the notes): still falling at the end (more epochs or data); rising (not converging: lower
the learning rate, check the data); loss near 0 / perplexity near 1 by a third of training
(over-fitting: cut epochs to about a third); eval loss rising while train loss falls (over-fitting);
healthy. 'tunesmith train' prints this at the end of every run.

Examples:

  tunesmith diagnose saves/quickstart

  tunesmith diagnose saves/quickstart --json
"""

ConfigText = Annotated[str | None, typer.Argument(
    help="A YAML config (the one you trained with). Optional when everything is given as key=value.",
    show_default=False)]
CompareOpt = Annotated[str | None, typer.Option(
    "--compare", help="Models to score on the same split, comma-separated: 'base' (no adapter) and/or run "
    "folders. One name alone is compared with the config's own model.", show_default=False)]
BenchmarkOpt = Annotated[Path | None, typer.Option(
    "--benchmark", help="Multiple-choice benchmark folder (MMLU / C-Eval layout) or file; uses n_shot.",
    show_default=False)]
PredictionsOpt = Annotated[Path | None, typer.Option(
    "--predictions", help="Score an existing predictions .jsonl (prompt, reference, prediction) instead of "
    "generating; LLaMA-Factory's generated_predictions.jsonl works too.", show_default=False)]


def _build_config(config: str | None, overrides: list[str] | None, *, needs_data: bool) -> Any:
    """The config; --benchmark and --predictions read no dataset, so a config without one is fine."""
    items = list(overrides or [])
    if config is not None and "=" in config and not Path(config).exists():
        items.insert(0, config)  # kept as text: a Path would turn "http://host" into "http:/host"
        config = None
    path = Path(config) if config is not None else None
    return build(path, items, require_data=needs_data)


def _metrics_table(cmp: Any, title: str) -> None:
    from rich.table import Table

    from tunesmith.eval.compare import verdicts
    from tunesmith.eval.report import DESCRIPTIONS, best_value, format_value

    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for label in cmp.labels:
        table.add_column(label, justify="right")
    table.add_column("meaning", style="dim")
    for key in cmp.metric_keys():
        best = best_value(cmp, key)
        values = [e.metrics.get(key) for e in cmp.evals]
        cells = [f"[bold green]{format_value(key, v)}[/]" if best is not None and v == best else format_value(key, v)
                 for v in values]
        table.add_row(key, *cells, DESCRIPTIONS.get(key, ""))
    console.print(table)
    for v in verdicts(cmp) if len(cmp.evals) > 1 else []:
        style = "bold red" if v.startswith("WORSE") else ("green" if v.startswith("BETTER") else "yellow")
        console.print(f"[{style}]{v}[/{style}]")


def _files(files: dict[str, Path]) -> None:
    for name, path in files.items():
        console.print(f"  {name:<24} {path}")


def _benchmark_table(results: list[tuple[str, dict]]) -> None:
    from rich.table import Table

    res0 = results[0][1]
    table = Table(title=f"{res0['benchmark']}, {res0['n_shot']}-shot: accuracy (%)", title_justify="left")
    table.add_column("subject")
    table.add_column("n", justify="right")
    for label, _ in results:
        table.add_column(label, justify="right")
    for s, info in res0["subjects"].items():
        table.add_row(info["name"], str(info["n"]), *[f"{r['subjects'][s]['accuracy']:.1f}" for _, r in results])
    table.add_row("[bold]overall[/bold]", str(res0["n"]), *[f"[bold]{r['accuracy']:.1f}[/bold]" for _, r in results])
    console.print(table)
    console.print("[dim]By the likelihood of the option letters A-D; chance is 25.[/dim]")


def eval_command(
    config: ConfigText = None,
    overrides: OverridesArg = None,
    compare: CompareOpt = None,
    benchmark: BenchmarkOpt = None,
    predictions: PredictionsOpt = None,
) -> None:
    """Score a model on a dataset split (see the examples)."""
    cfg = _build_config(config, overrides, needs_data=benchmark is None and predictions is None)
    from tunesmith.eval import pipeline
    from tunesmith.eval.evaluate import compare_targets

    if predictions is not None:
        cmp, files = pipeline.score_file(cfg, predictions)
        _metrics_table(cmp, f"{predictions} ({len(cmp.evals[0].rows)} rows)")
        _files(files)
        return
    targets = compare_targets(cfg, compare) if compare else None
    if benchmark is not None:
        results, files = pipeline.benchmark(cfg, benchmark, targets)
        _benchmark_table(results)
        _files(files)
        return
    cmp, files = pipeline.evaluate(cfg, targets)
    n = len(cmp.evals[0].rows)
    _metrics_table(cmp, f"'{cmp.split}' split ({n} examples)" + (": " + " vs ".join(cmp.labels) if compare else ""))
    _files(files)


def diagnose_command(
    run_dir: Annotated[Path, typer.Argument(help="A training run's output_dir (holds train_log.jsonl).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the diagnosis as JSON.")] = False,
) -> None:
    """Say which loss-curve case of the notes applies to a run (see the examples)."""
    from tunesmith.eval.diagnose import diagnose_run, print_diagnosis

    diag = diagnose_run(run_dir)
    if as_json:
        import json

        typer.echo(json.dumps(diag.to_dict(), ensure_ascii=False, indent=2))
    else:
        print_diagnosis(diag)


def register(app: typer.Typer) -> None:
    """Add ``eval`` and ``diagnose`` to the app."""
    app.command("eval", help=EVAL_HELP)(eval_command)
    app.command("diagnose", help=DIAGNOSE_HELP, no_args_is_help=True)(diagnose_command)
