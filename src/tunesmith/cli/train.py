"""``tunesmith train``: run one or several training stages from a config."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from tunesmith.cli.common import ConfigArg, OverridesArg, build
from tunesmith.utils.console import console

EXAMPLES = """
Examples:

  tunesmith train examples/quickstart.yaml

  tunesmith train examples/quickstart.yaml learning_rate=2e-4 num_train_epochs=5 output_dir=saves/try2

  tunesmith train examples/quickstart.yaml resume_from_checkpoint=last

  tunesmith train my.yaml nproc_per_node=2 deepspeed=z3 report_to=tensorboard
"""


def _summary_table(result: dict) -> None:
    from rich.table import Table

    table = Table(title=f"Held-out test split ({result['n']} examples): base vs tuned", title_justify="left")
    table.add_column("metric")
    table.add_column("base", justify="right")
    table.add_column("tuned", justify="right")
    for key in result["tuned"]:
        b, t = result["base"][key], result["tuned"][key]
        color = "green" if t > b else ("red" if t < b else "")
        table.add_row(key, f"{b:.1f}", f"[{color}]{t:.1f}[/{color}]" if color else f"{t:.1f}")
    console.print(table)
    if result["tuned"].get("rouge-l", 0) < result["base"].get("rouge-l", 0):
        console.print("[bold red]The tuned model scores below the base model[/bold red]: check the data and "
                      "hyper-parameters (the notes: a tuned score below the untrained one means something is wrong).")


def train(config: ConfigArg = None, overrides: OverridesArg = None) -> None:
    """Fine-tune a model: SFT with LoRA by default; every hyper-parameter is a config key."""
    from tunesmith.config.load import stage_configs

    cfg = build(config, overrides)
    stage_configs(cfg)  # every stage's config is checked before anything loads
    if _launched(cfg, config, overrides):  # several processes: this one only started the launcher
        return
    from tunesmith.train.distributed import quiet_other_ranks
    from tunesmith.train.multistage import run_stages  # heavy imports only after the config is valid

    quiet_other_ranks()

    started = time.time()
    result, last_cfg = run_stages(cfg)  # chaining, replay, lower later learning rates, continue_from
    from tunesmith.train.distributed import end_process_group, is_main_process

    if not is_main_process():  # rank 0 reports, scores and writes; the other ranks are done
        end_process_group()
        return
    m = result.metrics
    console.print(f"\n[bold green]Done[/bold green] in {time.time() - started:.0f}s: {m.get('steps')} steps, "
                  f"loss {m.get('first_loss') or float('nan'):.3f} → {m.get('final_loss') or float('nan'):.3f}, "
                  f"{m.get('tokens_per_s') or 0:.0f} tokens/s, peak memory {m.get('peak_rss_mb')} MB")
    _after_training(last_cfg, result)
    for name, path in result.files.items():
        console.print(f"  {name:<12} {path}")
    from tunesmith.eval.diagnose import report_run  # the notes' loss-curve cases, with evidence

    report_run(result.output_dir)
    if last_cfg.finetune.stage != "rm":  # a reward model scores answers; it does not chat
        console.print(f"\nChat with it:  tunesmith chat --adapter {result.output_dir}")


def _launched(cfg, config: Path | None, overrides: list[str] | None) -> bool:  # noqa: ANN001 - a Config
    """Check the engine / tracker keys; when the config asks for several processes (or DeepSpeed / FSDP),
    run ``tunesmith train`` with the same arguments under torchrun / accelerate and return True."""
    import torch

    from tunesmith.cli.common import split_config_and_overrides
    from tunesmith.train.distributed import preflight
    from tunesmith.train.launch import plan_launch, run_launch

    preflight(cfg, cuda=torch.cuda.is_available())
    plan = plan_launch(cfg)
    if plan is None:
        return False
    path, items = split_config_and_overrides(config, overrides)
    seconds = run_launch(plan, ([str(path)] if path else []) + items)
    console.print(f"\n[bold green]Done[/bold green]: {plan.world_size} processes in {seconds:.0f}s; the run "
                  f"folder is {cfg.train.output_dir}")
    return True


def _after_training(cfg, result) -> None:  # noqa: ANN001 - internal helper
    """Base-vs-tuned score on the test split (when there is one), saved into summary.json."""
    from tunesmith.train.data import load_splits
    from tunesmith.train.runner import SUMMARY
    from tunesmith.utils.io import write_json

    if not (cfg.train.report_summary and cfg.finetune.stage == "sft"):
        return
    test = [e for e in load_splits(cfg).test if e.kind == "sft"]
    if not test:
        console.print("[dim]No test split (test_dataset or test_size): skipping the base-vs-tuned score.[/dim]")
        return
    from tunesmith.eval.summary import base_vs_tuned

    t0 = time.time()
    comparison = base_vs_tuned(cfg, str(result.output_dir), test)
    comparison["seconds"] = round(time.time() - t0, 1)
    _summary_table(comparison)
    summary_path = Path(result.output_dir) / SUMMARY
    import json

    data = json.loads(summary_path.read_text())
    data["base_vs_tuned"] = comparison
    write_json(summary_path, data)
    result.files["summary"] = str(summary_path)


def register(app: typer.Typer) -> None:
    app.command(help=(train.__doc__ or "") + "\n" + EXAMPLES, no_args_is_help=True)(train)
