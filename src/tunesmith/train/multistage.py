"""Multi-stage training and extending a finished run, as the notes advise.

A config may list ``stages`` (flat-key overrides run in order). Each later stage:

- starts from the previous stage's result (its adapter or full weights) unless it names its own start;
- defaults to a lower learning rate than the stage before (``stage_lr_scale``, 0.5: 1e-5 then 5e-6);
- can mix back a ``replay`` share of the earlier stages' training data against forgetting, sampled
  deterministically with ``seed`` and written beside the stage's folder as ``<output_dir>.replay.jsonl``.

``continue_from=RUN_DIR`` on a single run extends a finished run (more epochs, or new data) with an
explicit ``lr_schedule``: ``restart`` warms up again to ``learning_rate`` and decays over the new steps;
``continue`` picks the schedule up where the earlier run left it, as if that run had been planned with
the new steps added: no second warm-up, starting at the rate the stretched schedule has at the earlier
run's last step, then decaying with the same schedule type. Every choice is recorded in the stage's
``summary.json`` (key ``lineage``); a multi-stage run also writes ``stages.json`` in its ``output_dir``.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from tunesmith.config.load import build_config, load_config, stage_configs
from tunesmith.config.schema import Config
from tunesmith.data.records import Example, to_dict
from tunesmith.train.data import load_splits
from tunesmith.train.distributed import is_main_process
from tunesmith.train.resolve import run_settings
from tunesmith.train.runner import SUMMARY, RunResult, read_summary
from tunesmith.train.stages import run_stage
from tunesmith.train.steps import config_steps
from tunesmith.train.trl_setup import STAGE_DATA
from tunesmith.utils.console import console
from tunesmith.utils.errors import ConfigError
from tunesmith.utils.io import write_json, write_jsonl

STAGES_FILE = "stages.json"


def _rebuild(cfg: Config, **changes: Any) -> Config:
    flat = cfg.flat()
    flat.pop("stages", None)
    return build_config({**flat, **changes}, source=cfg.source)


# -- replay --------------------------------------------------------------------------------------

def replay_pool(cfg: Config, earlier: list[Config]) -> list[Example]:
    """Training examples of this stage's kind from ``replay_dataset`` or from the earlier configs."""
    kind = STAGE_DATA[cfg.finetune.stage]
    if cfg.data.replay_dataset:
        sources = [_rebuild(cfg, dataset=cfg.data.replay_dataset, eval_dataset=[], test_dataset=[], val_size=0.0,
                            test_size=0.0)]
    else:
        sources = [e for e in earlier if STAGE_DATA[e.finetune.stage] == kind]
    pool = [ex for src in sources for ex in load_splits(src).train if ex.kind == kind]
    if not pool:
        kinds = sorted({STAGE_DATA[e.finetune.stage] for e in earlier}) or ["none"]
        raise ConfigError([f"'replay': stage {cfg.finetune.stage} trains on {kind} data but the earlier training "
                           f"data is {', '.join(kinds)}; set replay_dataset to {kind} data, or replay: 0"])
    return pool


def add_replay(cfg: Config, earlier: list[Config]) -> tuple[Config, dict[str, Any]]:
    """Mix ``replay`` x (earlier training examples) into this stage's datasets; returns (config, record)."""
    share = cfg.data.replay
    if share <= 0:
        return cfg, {"share": 0.0}
    pool = replay_pool(cfg, earlier)
    n = max(1, round(share * len(pool)))
    picked = random.Random(cfg.train.seed).sample(pool, n)
    path = Path(f"{Path(cfg.train.output_dir)}.replay.jsonl")
    write_jsonl(path, [to_dict(ex) for ex in picked])
    new_train = len(load_splits(cfg).train)
    record = {"share": share, "examples": n, "of_earlier": len(pool), "new_examples": new_train,
              "mixed_share": round(n / (n + new_train), 4), "file": str(path), "seed": cfg.train.seed,
              "from": cfg.data.replay_dataset or [d for e in earlier for d in e.data.dataset]}
    console.print(f"replay: {n} of {len(pool)} earlier examples mixed into {new_train} new ones -> {path}")
    return _rebuild(cfg, dataset=[*cfg.data.dataset, str(path)]), record


# -- learning-rate schedule when extending a run ---------------------------------------------------

def schedule_value(kind: str, peak: float, warmup: int, total: int, step: int) -> float:
    """The learning rate transformers' schedule ``kind`` gives at ``step`` of ``total``."""
    if step < warmup and kind != "constant":
        return peak * step / max(1, warmup)
    if kind in ("constant", "constant_with_warmup"):
        return peak
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if kind == "linear":
        return peak * (1.0 - progress)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine


def estimate_steps(cfg: Config) -> int:
    """Optimizer steps this config will run (exact with max_steps, else from the example count)."""
    if cfg.train.max_steps > 0:
        return cfg.train.max_steps
    n = len(load_splits(cfg).train) * (cfg.finetune.num_generations if cfg.finetune.stage == "grpo" else 1)
    return config_steps(cfg, n)


def apply_schedule(cfg: Config, earlier_dir: str) -> tuple[Config, dict[str, Any]]:
    """Apply ``lr_schedule`` for a run that starts from the finished run in ``earlier_dir``."""
    if cfg.train.lr_schedule == "restart":
        return cfg, {"lr_schedule": "restart", "learning_rate": cfg.train.learning_rate,
                     "warmup_ratio": cfg.train.warmup_ratio}
    prev = run_settings(earlier_dir)
    steps_before = (read_summary(earlier_dir).get("metrics") or {}).get("steps")
    if not prev or not steps_before:
        raise ConfigError([f"'lr_schedule': continue needs the earlier run's tunesmith_run.yaml and summary.json "
                           f"in {earlier_dir!r}; use lr_schedule: restart for folders tunesmith did not write"])
    kind, peak = prev.get("lr_scheduler_type", "cosine"), float(prev.get("learning_rate", cfg.train.learning_rate))
    steps_new = estimate_steps(cfg)
    total = steps_before + steps_new
    warmup = math.ceil(float(prev.get("warmup_ratio", 0.0)) * steps_before)
    start = schedule_value(kind, peak, warmup, total, steps_before)
    record = {"lr_schedule": "continue", "earlier_peak_lr": peak, "scheduler": kind, "earlier_steps": steps_before,
              "new_steps": steps_new, "start_lr": start, "warmup_ratio": 0.0}
    console.print(f"lr_schedule continue: {kind} from {start:.3g} (step {steps_before} of {total}), no warm-up")
    return _rebuild(cfg, learning_rate=start, warmup_ratio=0.0, lr_scheduler_type=kind), record


# -- running ---------------------------------------------------------------------------------------

def _annotate(result: RunResult, lineage: dict[str, Any]) -> None:
    """Record how this stage started in its summary.json, and show its before/after probe."""
    before, after = result.metrics.get("before") or {}, result.metrics.get("after") or {}
    for key in [k for k in after if isinstance(after[k], (int, float)) and k in before]:
        console.print(f"  {key:<20} {before[key]:>10.4g} -> {after[key]:.4g}")
    result.metrics["lineage"] = lineage
    if not is_main_process():  # rank 0 writes the run folder
        return
    path = result.output_dir / SUMMARY
    data = json.loads(path.read_text()) if path.exists() else {}
    data["lineage"] = lineage
    write_json(path, data)


def _earlier_of(run_dir: str) -> list[Config]:
    settings = run_settings(run_dir)
    settings.pop("stages", None)
    return [load_config(None, settings)] if settings else []


def run_single(cfg: Config) -> tuple[RunResult, Config]:
    """One stage; with continue_from, the schedule choice and replay from the earlier run's data."""
    lineage: dict[str, Any] = {"started_from": cfg.train.continue_from or cfg.model.adapter_name_or_path}
    if cfg.train.continue_from:
        cfg, replay = add_replay(cfg, _earlier_of(cfg.train.continue_from))
        cfg, schedule = apply_schedule(cfg, cfg.train.continue_from)
        lineage.update(schedule=schedule, replay=replay)
    elif cfg.data.replay > 0 and not cfg.data.replay_dataset:
        raise ConfigError(["'replay': a single run has no earlier stage; set continue_from, list stages, or give "
                           "replay_dataset"])
    elif cfg.data.replay > 0:
        cfg, lineage["replay"] = add_replay(cfg, [])
    result = run_stage(cfg)
    _annotate(result, lineage)
    return result, cfg


def _stage_changes(cfg: Config, i: int, own: dict[str, Any], prev: Config | None, root: Path) -> tuple[dict, dict]:
    """Defaults a later stage takes from the one before it; returns (changes, record)."""
    changes: dict[str, Any] = {}
    record: dict[str, Any] = {"index": i + 1, "stage": cfg.finetune.stage}
    if "output_dir" not in own:
        changes["output_dir"] = str(root / f"stage{i + 1}-{cfg.finetune.stage}")
    if prev is None:
        record["learning_rate"] = {"value": cfg.train.learning_rate, "source": "set for this stage"
                                   if "learning_rate" in own else "top-level learning_rate"}
        return changes, record
    if not ({"continue_from", "model_name_or_path", "adapter_name_or_path"} & set(own)):
        changes["continue_from"] = prev.train.output_dir
    if "learning_rate" in own:
        record["learning_rate"] = {"value": cfg.train.learning_rate, "source": "set for this stage"}
    else:
        lr = prev.train.learning_rate * cfg.finetune.stage_lr_scale
        changes["learning_rate"] = lr
        record["learning_rate"] = {"value": lr, "source": f"previous stage x stage_lr_scale "
                                   f"({prev.train.learning_rate:g} x {cfg.finetune.stage_lr_scale:g})"}
    return changes, record


def check_stages(configs: list[Config], overrides: list[dict[str, Any]] | None = None) -> None:
    """What each stage would otherwise check only when it starts (reward functions, lora_target against the
    model), for every stage before the first one trains: a bad stage 3 must not cost stage 1's hour.
    Batch-size rules need no model and are part of every config's validation (config/load.py).
    ``overrides`` are the stages' own keys (``cfg.stages``): a later stage without its own start continues
    the previous stage's adapter."""
    from tunesmith.model.adapters import linear_module_names_of, lora_target_problem
    from tunesmith.model.load import resolve_model_path
    from tunesmith.train.rewards import resolve_rewards

    problems: list[str] = []
    names: dict[str, list[str]] = {}
    for i, c in enumerate(configs):
        where = f"stages[{i}]: " if len(configs) > 1 else ""
        if c.finetune.stage == "grpo":
            try:
                resolve_rewards(c.finetune.reward_funcs, c.source)
            except ConfigError as exc:
                problems += [where + p for p in exc.problems]
        own = (overrides or [])[i] if i < len(overrides or []) else {}
        continues = c.train.continue_from or c.model.adapter_name_or_path or (
            i > 0 and not ({"continue_from", "model_name_or_path", "adapter_name_or_path"} & set(own)))
        if c.finetune.finetuning_type != "lora" or c.finetune.lora_target == ["all"] or continues:
            continue  # a continued adapter keeps its own targets
        base = resolve_model_path(c.model.model_name_or_path, c.model.cache_dir)
        if base not in names:
            names[base] = linear_module_names_of(base, trust_remote_code=c.model.trust_remote_code)
        problem = lora_target_problem(names[base], c.finetune.lora_target)
        problems += [where + problem] if problem else []
    if problems:
        raise ConfigError(problems, source=configs[0].source)


def run_stages(cfg: Config) -> tuple[RunResult, Config]:
    """Run a config's stages in order (or its single stage); returns the last result and its config."""
    configs = stage_configs(cfg)
    check_stages(configs, cfg.stages)
    if not cfg.stages:
        return run_single(configs[0])
    if cfg.train.resume_from_checkpoint:
        raise ConfigError(["'resume_from_checkpoint': resume one stage at a time (run that stage's folder's "
                           "tunesmith_run.yaml with resume_from_checkpoint=last)"])
    root = Path(cfg.train.output_dir)
    done: list[Config] = []
    records: list[dict[str, Any]] = []
    result: RunResult | None = None
    for i, stage_cfg in enumerate(configs):
        console.rule(f"stage {i + 1}/{len(configs)}: {stage_cfg.finetune.stage}")
        changes, record = _stage_changes(stage_cfg, i, cfg.stages[i], done[-1] if done else None, root)
        stage_cfg = _rebuild(stage_cfg, **changes)
        stage_cfg, record["replay"] = add_replay(stage_cfg, done) if done else (stage_cfg, {"share": 0.0})
        if done and stage_cfg.train.continue_from:
            stage_cfg, record["schedule"] = apply_schedule(stage_cfg, stage_cfg.train.continue_from)
        record["started_from"] = stage_cfg.train.continue_from
        result = run_stage(stage_cfg)
        _annotate(result, record)
        record.update(output_dir=str(result.output_dir), metrics={k: result.metrics.get(k) for k in (
            "steps", "first_loss", "final_loss", "final_eval_loss", "wall_time_s", "before", "after")})
        records.append(record)
        done.append(stage_cfg)
    assert result is not None  # configs is never empty
    if is_main_process():
        write_json(root / STAGES_FILE, {"stages": records})
    result.files["stages"] = str(root / STAGES_FILE)
    return result, done[-1]
