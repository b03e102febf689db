"""``tunesmith advise`` and ``tunesmith estimate``: advice and estimates before spending compute."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tunesmith.cli.common import ConfigArg, OverridesArg, build, split_config_and_overrides
from tunesmith.utils.console import console

ADVISE_HELP = """Check a config and its data against the notes' rules before training.

Reads the config and the datasets (token counts with the model's own tokenizer) and prints each
setting, its current value, the recommended value and a one-line reason with the rule's source:
optimizer steps (>= 1000), epochs for the data size, learning rate, warm-up, evaluation frequency,
LoRA alpha/rank, cutoff_len truncation (which examples), repeated instruction phrasings, exact and
near duplicates, missing validation/test splits and held-out items that leak into training.

Examples:

  tunesmith advise examples/quickstart.yaml

  tunesmith advise examples/quickstart.yaml --write quickstart.advised.yaml

  tunesmith advise my.yaml num_train_epochs=10 --json advice.json
"""

ESTIMATE_HELP = """Estimate tokens, steps, time, peak memory and cloud cost of a training run.

On this machine the time and memory come from a short calibration run (the real run's first few
training steps on your data, in a temporary folder); for common GPUs from a FLOPs and memory model
(weights, optimizer states, activations, with and without gradient checkpointing). With --target, a
config that does not fit that device's memory gets the nearest config that does (smaller batch with
more accumulation, gradient checkpointing, LoRA, shorter cutoff_len) as a ready YAML. Cloud costs use
an editable price table (--prices; the notes' providers and formulas are the defaults).

Examples:

  tunesmith estimate examples/quickstart.yaml

  tunesmith estimate examples/quickstart.yaml --target T4 finetuning_type=full per_device_train_batch_size=64

  tunesmith estimate my.yaml --no-calibrate --prices my_prices.yaml --mix-tokens 200000
"""

_LEVEL = {"ok": "[green]ok[/green]", "info": "[cyan]info[/cyan]", "warn": "[bold yellow]warn[/bold yellow]"}


def human_seconds(s: float) -> str:
    """12 s, 3 min 5 s, 2.4 h."""
    if s < 60:
        return f"{s:.0f} s" if s >= 1 else f"{s:.2f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{s / 3600:.1f} h"


def human_bytes(n: float) -> str:
    """0.3 MB, 512 MB, 2.4 GB."""
    if n < 1024**3:
        return f"{n / 1024**2:.0f} MB" if n >= 1024**2 else f"{n / 1024**2:.1f} MB"
    return f"{n / 1024**3:.1f} GB"


def _load(config: Path | None, overrides: list[str] | None,
          ) -> tuple[Any, list[tuple[str, Any, Any]], Path | None, dict[str, Any]]:
    """Config, (label, stage config, data profile) per stage, the YAML path and the command-line
    overrides (for --write). A single-stage config has one entry labelled ''."""
    from tunesmith.config.load import parse_overrides, stage_configs

    cfg = build(config, overrides)
    path, items = split_config_and_overrides(config, overrides)
    from tunesmith.advise.profile import build_profile
    from tunesmith.utils.console import status

    stages = stage_configs(cfg)
    out = []
    for i, stage_cfg in enumerate(stages):
        label = f"stage {i + 1}/{len(stages)} ({stage_cfg.finetune.stage})" if len(stages) > 1 else ""
        with status(f"Reading and tokenizing the datasets{' of ' + label if label else ''}"):
            out.append((label, stage_cfg, build_profile(stage_cfg)))
    return cfg, out, path, parse_overrides(items)


def _data_line(cfg: Any, p: Any) -> None:
    console.print(
        f"[bold]Data[/bold]: {p.n_train} train / {p.n_val} val / {p.n_test} test examples ({p.kind}) · "
        f"{p.tokens_per_epoch:,} tokens per epoch with the {p.tokenizer} tokenizer ({p.template} template) · "
        f"mean {p.mean_len:.0f}, longest {p.max_len} tokens · {100 * p.loss_share:.1f}% of tokens carry loss"
    )


def _write_config(path: Path | None, cfg: Any, changes: dict[str, Any], out: Path, note: str) -> None:
    from tunesmith.advise.configfile import write_recommended
    from tunesmith.config.load import dump_config
    from tunesmith.utils.io import write_text

    if path is not None:
        write_recommended(path, changes, out, note=note)
    else:
        from tunesmith.config.load import build_config

        write_text(out, dump_config(build_config({**cfg.flat(), **changes})))
    console.print(f"Wrote [bold]{out}[/bold]  (train it with: tunesmith train {out})")


def advise(
    config: ConfigArg = None,
    overrides: OverridesArg = None,
    write: Annotated[Path | None, typer.Option("--write", help="Write the recommended config (YAML) here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the advice as JSON.")] = None,
) -> None:
    cfg, stages, path, cli_values = _load(config, overrides)
    from tunesmith.advise.rules import advise as run_rules

    report, per_stage = [], []
    for label, stage_cfg, profile in stages:
        if label:
            console.rule(label)
        rows, changes = run_rules(stage_cfg, profile)
        _advice_table(stage_cfg, profile, rows, changes)
        per_stage.append(changes)
        report.append({"stage": label, "data": profile.to_dict(), "advice": [r.to_dict() for r in rows],
                       "changes": changes})
    if write and len(stages) == 1:
        _write_config(path, cfg, {**cli_values, **per_stage[0]}, write, "tunesmith advise")
    elif write:
        _write_stages(path, cfg, cli_values, per_stage, write)
    if json_out:
        from tunesmith.utils.io import write_json

        write_json(json_out, report[0] if len(report) == 1 else {"stages": report})


def _advice_table(cfg: Any, profile: Any, rows: list[Any], changes: dict[str, Any]) -> None:
    from rich.table import Table

    _data_line(cfg, profile)
    table = Table(title="Advice (rules from the notes)", title_justify="left", show_lines=False)
    for col in ("", "setting", "current", "recommended", "why · source"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(_LEVEL[r.level], r.key, r.current, r.recommended, f"{r.reason}\n[dim]{r.source}[/dim]")
    console.print(table)
    for r in rows:
        if r.details and r.level != "ok":
            console.print(f"[yellow]{r.key}[/yellow]: " + "; ".join(r.details[:10]))
    n_warn = sum(1 for r in rows if r.level == "warn")
    console.print(f"{n_warn} warning(s). " + ("Recommended changes: " + ", ".join(
        f"{k}={v}" for k, v in changes.items()) if changes else "No config change recommended."))


def _write_stages(path: Path | None, cfg: Any, cli_values: dict[str, Any], per_stage: list[dict[str, Any]],
                  out: Path) -> None:
    """A multi-stage config with each stage's recommendations in its own entry (comments are not kept)."""
    import yaml

    from tunesmith.config.load import build_config, read_yaml
    from tunesmith.utils.io import write_text

    data = {**(read_yaml(path) if path else cfg.flat()), **cli_values}
    data["stages"] = [{**stage, **changes} for stage, changes in zip(data.get("stages") or [], per_stage)]
    if path and out.resolve().parent != path.resolve().parent and isinstance(data.get("dataset_dir"), str):
        import os

        data["dataset_dir"] = os.path.relpath((path.parent / data["dataset_dir"]).resolve(), out.parent.resolve())
    build_config(dict(data), source=str(out))
    write_text(out, "# written by tunesmith advise (each stage's recommendations in its entry)\n"
               + yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    console.print(f"Wrote [bold]{out}[/bold]  (train it with: tunesmith train {out})")


def _machine(cfg: Any, shape: Any, w: Any, steps: int) -> dict[str, Any]:
    """Calibrate on this machine and predict the full run."""
    import psutil
    from transformers import AutoConfig

    from tunesmith.advise.calibrate import calibrate
    from tunesmith.advise.estimate import peak_memory
    from tunesmith.train.compile import COMPILED_TIME_SHARE, compile_seconds, decide
    from tunesmith.train.resolve import resolve_base
    from tunesmith.utils.console import status

    baseline = psutil.Process().memory_info().rss
    with status(f"Calibrating: the real run's first {steps} training steps"):
        cal = calibrate(cfg, steps=steps)
    modeled = peak_memory(shape, w, bf16=cal.bf16, overhead_bytes=baseline, host=True)
    train_s = cal.train_seconds(w)  # calibrated eager; a long run also compiles, as train would decide
    model_config = AutoConfig.from_pretrained(resolve_base(cfg)[0])
    on, why = decide(cfg.train.torch_compile, model_config, trained_tokens=w.tokens, fast_path=cfg.train.fast_path,
                     gradient_checkpointing=cfg.train.gradient_checkpointing)
    if on:
        train_s = train_s * COMPILED_TIME_SHARE + compile_seconds(model_config)
    console.print(
        f"[bold]This machine[/bold] ({cal.cores} cores, {'bf16' if cal.bf16 else 'fp32'}): training ≈ "
        f"[bold]{human_seconds(train_s)}[/bold] ({w.steps} steps, {w.n_evals} evaluations; measured "
        f"{cal.tokens_per_s:.0f} tokens/s over {cal.steps_timed} steps after the first), plus ~"
        f"{human_seconds(cal.load_s)} to load the model. Peak memory ≈ [bold]{human_bytes(cal.peak_rss_mb * 2**20)}"
        f"[/bold] measured (model: {human_bytes(modeled.total)})."
        + (f" Includes torch.compile ({why})." if on else "")
    )
    if cal.load_average > 1.5 * cal.cores:
        console.print(f"[yellow]The machine was busy during calibration (load {cal.load_average:.1f} on "
                      f"{cal.cores} cores): the time is what a run would take under that load.[/yellow]")
    return {"calibration": cal.to_dict(), "train_seconds": train_s, "modeled_memory_gb": modeled.to_dict(),
            "torch_compile": on}


def _gpu_table(shape: Any, w: Any, devices: dict[str, Any], cpu_seconds: float | None) -> list[dict[str, Any]]:
    from rich.table import Table

    from tunesmith.advise.estimate import estimate_on

    table = Table(title="Common GPUs (FLOPs and memory model; see gpus.yaml)", title_justify="left")
    for col in ("GPU", "memory", "time", "peak memory", "fits"):
        table.add_column(col, justify="left" if col == "GPU" else "right")
    out = []
    for name, dev in devices.items():
        if name != dev.name:  # an alias
            continue
        est = estimate_on(dev, shape, w)
        fits = "[green]yes[/green]" if est.fits else "[red]no[/red]"
        table.add_row(name, f"{dev.memory_gb:g} GB", human_seconds(est.seconds), human_bytes(est.memory.total), fits)
        out.append({"gpu": name, "seconds": est.seconds, "memory_gb": est.memory.to_dict(), "fits": est.fits})
    console.print(table)
    if cpu_seconds:
        console.print(f"[dim]The notes' rule of thumb (普通GPU与CPU训练时效差距约20倍): a common GPU would take "
                      f"~{human_seconds(cpu_seconds / 20)} for what takes {human_seconds(cpu_seconds)} here.[/dim]")
    return out


def _target(cfg: Any, shape: Any, profile: Any, w: Any, target: str, devices: dict[str, Any], baseline: float,
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check the config against one device; returns (report, changes that make it fit)."""
    from tunesmith.advise.estimate import GB, nearest_fit, peak_memory
    from tunesmith.utils.errors import ConfigError
    from tunesmith.utils.hardware import bf16_available, total_memory_gb

    if target.lower() == "cpu":
        budget, bf16, overhead, label = total_memory_gb() * GB * 0.9, bf16_available(), baseline, "this machine"
    else:
        dev = devices.get(target) or next((d for n, d in devices.items() if n.lower() == target.lower()), None)
        if dev is None:
            raise ConfigError([f"--target {target!r}: unknown device; known: cpu, {', '.join(sorted(devices))}"])
        budget, bf16, overhead, label = dev.usable_bytes, dev.bf16, dev.context_gb * GB, dev.name
    settings = cfg.flat()
    host = target.lower() == "cpu"
    need = peak_memory(shape, w, bf16=bf16, overhead_bytes=overhead, host=host)
    fit = nearest_fit(shape, profile, settings, budget, bf16=bf16, overhead_bytes=overhead, host=host)
    if fit is None:
        console.print(f"[green]Fits {label}[/green]: peak ≈ {human_bytes(need.total)} of {human_bytes(budget)} "
                      "usable.")
        return {"target": label, "fits": True, "memory_gb": need.to_dict()}, {}
    console.print(f"[red]Does not fit {label}[/red]: peak ≈ {human_bytes(need.total)} (weights "
                  f"{human_bytes(need.weights)}, optimizer states {human_bytes(need.trainable_states)}, activations "
                  f"{human_bytes(need.activations)}, logits {human_bytes(need.logits)}) but {human_bytes(budget)} "
                  "usable.")
    if not fit.changes:
        console.print("[red]" + "; ".join(fit.notes) + "[/red]")
        return {"target": label, "fits": False, "memory_gb": need.to_dict(), "fit": None}, {}
    console.print(f"Nearest config that fits ({human_bytes(fit.memory.total)}): " + "; ".join(fit.notes))
    return {"target": label, "fits": False, "memory_gb": need.to_dict(), "fit": fit.changes,
            "fit_memory_gb": fit.memory.to_dict()}, fit.changes


def _costs(profile: Any, w: Any, shape: Any, prices: Path | None, mix_tokens: int) -> list[dict[str, Any]]:
    from rich.table import Table

    from tunesmith.advise.cost import load_prices, training_costs

    table_data = load_prices(prices)
    costs = training_costs(table_data, train_tokens=profile.tokens_per_epoch, epochs=w.epochs, mix_tokens=mix_tokens,
                           model_params_b=shape.total_params / 1e9)
    table = Table(title=f"Cloud training cost ({table_data.currency}; prices as of {table_data.as_of})",
                  title_justify="left")
    for col in ("provider", "price", "formula", "cost"):
        table.add_column(col, justify="right" if col == "cost" else "left", overflow="fold")
    out = []
    for c in costs:
        p = c.provider
        amount = f"{c.amount:.4f}" if c.applies else f"[dim]{c.amount:.4f} (tier is for ≤{p.model_size_max_b:g}B)[/dim]"
        table.add_row(f"{p.title}", f"{p.unit_price:g} / {p.per_tokens:g} tokens", p.formula_zh or p.formula, amount)
        out.append({"provider": p.name, "amount": c.amount, "applies": c.applies, "formula": p.formula})
    console.print(table)
    console.print(f"[dim]{profile.tokens_per_epoch:,} training tokens x {w.epochs:g} epochs"
                  + (f" + {mix_tokens:,} mixed-in tokens" if mix_tokens else "")
                  + "; providers count tokens with their own tokenizer. "
                  f"Edit {table_data.source} or pass --prices.[/dim]")
    return out


def estimate(
    config: ConfigArg = None,
    overrides: OverridesArg = None,
    target: Annotated[str | None, typer.Option(help="Device to fit: cpu, T4, 4090, A100-80G, H100, ... "
                                               "(see gpus.yaml).")] = None,
    calibrate: Annotated[bool, typer.Option("--calibrate/--no-calibrate",
                                            help="Run a few real steps here to measure time and memory.")] = True,
    steps: Annotated[int, typer.Option(help="Calibration steps (the first is not timed).")] = 8,
    gpus: Annotated[Path | None, typer.Option(help="GPU table (default: the shipped gpus.yaml).")] = None,
    prices: Annotated[Path | None, typer.Option(help="Price table (default: the shipped prices.yaml).")] = None,
    mix_tokens: Annotated[int, typer.Option(help="Tokens a provider mixes in (百炼 混合训练数据).")] = 0,
    write: Annotated[Path | None, typer.Option("--write", help="With --target: write the config that fits.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the estimate as JSON.")] = None,
) -> None:
    import psutil

    baseline = psutil.Process().memory_info().rss
    cfg, stages, path, cli_values = _load(config, overrides)
    reports = []
    for label, stage_cfg, profile in stages:
        if label:
            console.rule(label)
        reports.append(_estimate_stage(stage_cfg, profile, path if len(stages) == 1 else None, cli_values,
                                       target=target, calibrate=calibrate, steps=steps, gpus=gpus, prices=prices,
                                       mix_tokens=mix_tokens, write=write if len(stages) == 1 else None,
                                       baseline=baseline))
    if write and len(stages) > 1:
        console.print("[yellow]--write is for single-stage configs; apply the changes shown to each stage.[/yellow]")
    if json_out:
        from tunesmith.utils.io import write_json

        write_json(json_out, reports[0] if len(reports) == 1 else {"stages": reports})


def _estimate_stage(cfg: Any, profile: Any, path: Path | None, cli_values: dict[str, Any], *, target: str | None,
                    calibrate: bool, steps: int, gpus: Path | None, prices: Path | None, mix_tokens: int,
                    write: Path | None, baseline: float) -> dict[str, Any]:
    """Everything estimate prints for one stage; returns the JSON report."""
    from tunesmith.advise.estimate import load_gpus, model_shape, workload
    from tunesmith.train.resolve import resolve_base

    shape = model_shape(resolve_base(cfg)[0])
    devices = load_gpus(gpus)
    w = workload(cfg.flat(), profile)
    _data_line(cfg, profile)
    console.print(f"[bold]Run[/bold]: {w.tokens:,} tokens in {w.steps} optimizer steps ({w.epochs:g} epochs x "
                  f"{profile.n_rows} rows, batch {w.batch_size} x accumulation {w.grad_accum}), {w.n_evals} "
                  f"evaluations of {w.val_tokens:,} tokens · model {shape.total_params / 1e6:,.0f}M parameters")
    report: dict[str, Any] = {"data": profile.to_dict(), "workload": w.__dict__, "model": dict(shape.__dict__)}
    cpu_seconds = None
    if calibrate and cfg.finetune.stage == "sft":
        report["machine"] = _machine(cfg, shape, w, steps)
        cpu_seconds = report["machine"]["train_seconds"]
    elif calibrate:
        console.print(f"[dim]No calibration for stage {cfg.finetune.stage!r} (sft only); model estimates below.[/dim]")
    report["gpus"] = _gpu_table(shape, w, devices, cpu_seconds)
    if target:
        report["target"], changes = _target(cfg, shape, profile, w, target, devices, baseline)
        if changes:
            _show_fit(path, cfg, cli_values, changes, target, write)
    report["cloud"] = _costs(profile, w, shape, prices, mix_tokens)
    return report


def _show_fit(path: Path | None, cfg: Any, cli_values: dict[str, Any], changes: dict[str, Any], target: str,
              write: Path | None) -> None:
    from tunesmith.advise.configfile import patch_yaml_text, yaml_scalar

    note = f"tunesmith estimate --target {target}"
    values = {**cli_values, **changes}
    text = (patch_yaml_text(path.read_text(encoding="utf-8"), values, note=note) if path
            else "\n".join(f"{k}: {yaml_scalar(v)}" for k, v in values.items()) + "\n")
    console.rule("config that fits")
    console.print(text, markup=False, highlight=False)
    if write:
        _write_config(path, cfg, values, write, note)


def register(app: typer.Typer) -> None:
    """Add ``advise`` and ``estimate`` to the app."""
    app.command("advise", help=ADVISE_HELP, no_args_is_help=True)(advise)
    app.command("estimate", help=ESTIMATE_HELP, no_args_is_help=True)(estimate)
