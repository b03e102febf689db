"""Measure this machine: a few real training steps on the user's data.

The calibration goes through the real training path (the same tokenization, model preparation,
Trainer subclass, fast loss, precision and packing as ``tunesmith train``) with the config's batch
size, accumulation, cutoff_len, finetuning type and gradient checkpointing, for a few steps in a
temporary output_dir. The real run draws random batches; the calibration takes its first batch from
the longest rows (it decides peak memory, an upper bound for any batch of the run) and the rest in a
seeded random order, so the timed steps see batches of mixed lengths as the real run does. The steps
after the first give the time per step and per token, fitted as ``seconds = a + b x tokens``. One
evaluation pass on a validation sample gives the time per evaluated token.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from tunesmith.advise.estimate import Workload
from tunesmith.config.load import build_config
from tunesmith.config.schema import Config
from tunesmith.model.load import load_tokenizer
from tunesmith.train.data import encode_sft_rows, load_splits
from tunesmith.train.resolve import resolve_base, resolve_template
from tunesmith.train.runner import build_trainer, load_for_training, set_threads, to_dataset, use_bf16
from tunesmith.utils.errors import ConfigError
from tunesmith.utils.hardware import peak_rss_mb, physical_cores

MAX_ROWS = 20_000  # rows the calibration draws its batches from


@dataclass
class Calibration:
    """What a few measured steps say about this machine for this config."""

    steps_timed: int
    rows: int  # training rows the sampler drew from
    seconds_per_step: float  # a: fixed cost of an optimizer step
    seconds_per_token: float  # b: cost of one trained token
    first_step_s: float
    eval_seconds_per_token: float
    load_s: float
    peak_rss_mb: float
    tokens_per_s: float
    bf16: bool
    load_average: float  # 1-minute load average during the run (other processes slow the steps down)
    cores: int

    def train_seconds(self, w: Workload) -> float:
        """Predicted train_runtime of the full run (steps, evaluations, the slower first step)."""
        body = w.steps * self.seconds_per_step + w.tokens * self.seconds_per_token
        first_extra = max(0.0, self.first_step_s - self.seconds_per_step
                          - self.seconds_per_token * w.tokens / max(1, w.steps))
        return body + first_extra + w.eval_tokens * self.eval_seconds_per_token

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _StepClock(TrainerCallback):
    """Records (time, trained tokens so far) at the end of each optimizer step."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger
        self.marks: list[tuple[float, int]] = []

    def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
        self.marks = [(time.perf_counter(), 0)]

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        self.marks.append((time.perf_counter(), self.logger.tokens))


def _sample(rows: list[dict], n: int, seed: int, first_batch: int) -> list[dict]:
    """The ``first_batch`` longest rows first (the peak-memory batch), then a seeded random order of
    the others, at most ``n`` rows in all; read in this order by a sequential sampler."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]), reverse=True)
    head, rest = order[:first_batch], order[first_batch:]
    random.Random(seed).shuffle(rest)
    return [rows[i] for i in (head + rest)[:n]]


def _fit(marks: list[tuple[float, int]]) -> tuple[float, float, float]:
    """(a, b, first step seconds) from step-end marks, fitting seconds = a + b * tokens on steps 2..n."""
    durations = [(t1 - t0, k1 - k0) for (t0, k0), (t1, k1) in zip(marks, marks[1:])]
    first = durations[0][0]
    timed = durations[1:] or durations
    n = len(timed)
    mean_t = sum(d for d, _ in timed) / n
    mean_k = sum(k for _, k in timed) / n
    var_k = sum((k - mean_k) ** 2 for _, k in timed)
    if n >= 3 and var_k > 0 and mean_k > 0:
        b = sum((k - mean_k) * (d - mean_t) for d, k in timed) / var_k
        a = mean_t - b * mean_k
        if a >= 0 and b > 0:
            return a, b, first
    return 0.0, mean_t / max(1.0, mean_k), first


def calibration_config(cfg: Config, output_dir: str, steps: int) -> Config:
    """The user's config, for a few steps in a temporary folder, with nothing kept."""
    flat = cfg.flat()
    flat.pop("stages", None)
    flat.update(output_dir=output_dir, overwrite_output_dir=True, max_steps=steps, logging_steps=1,
                save_steps=10**9, plot_loss=False, report_summary=False, resume_from_checkpoint=None,
                torch_compile=False)  # eager speed; the estimate adds compiling separately
    return build_config(flat, source=cfg.source)


def calibrate(cfg: Config, *, steps: int = 8, seed: int = 0) -> Calibration:
    """Run ``steps`` real optimizer steps (the first one untimed) and one evaluation pass."""
    if cfg.finetune.stage != "sft":
        raise ConfigError([f"'stage': calibration runs sft steps; {cfg.finetune.stage!r} is estimated from the "
                           "model only (use --no-calibrate)"])
    steps = max(3, steps)
    set_threads(cfg)
    splits = load_splits(cfg)
    model_path, adapter_path = resolve_base(cfg)
    tokenizer = load_tokenizer(model_path, trust_remote_code=cfg.model.trust_remote_code)
    template = resolve_template(cfg, model_path, tokenizer)
    rows, _ = encode_sft_rows(splits.train, template, tokenizer, cfg)  # type: ignore[arg-type]
    per_step = cfg.train.per_device_train_batch_size * cfg.train.gradient_accumulation_steps
    sample = _sample(rows, MAX_ROWS, seed, per_step)
    # Evaluation reads the validation set in file order: time its first few batches as they are.
    eval_rows = 4 * cfg.train.per_device_eval_batch_size
    val_rows = encode_sft_rows(splits.val, template, tokenizer, cfg)[0][:eval_rows] if splits.val else []
    with tempfile.TemporaryDirectory(prefix="tunesmith-calibrate-") as tmp:
        run_cfg = calibration_config(cfg, tmp, steps=steps)
        t0 = time.perf_counter()
        model = load_for_training(run_cfg, model_path, adapter_path=adapter_path)
        load_s = time.perf_counter() - t0
        trainer, logger = build_trainer(run_cfg, model, tokenizer, sample, [], sampling="sequential")
        clock = _StepClock(logger)
        trainer.add_callback(clock)
        for quiet in (PrinterCallback, ProgressCallback):  # the calibration prints its own summary
            trainer.remove_callback(quiet)
        trainer.train()
        a, b, first = _fit(clock.marks)
        eval_per_token = 0.0
        if val_rows:
            t0 = time.perf_counter()
            trainer.evaluate(eval_dataset=to_dataset(val_rows))
            eval_per_token = (time.perf_counter() - t0) / max(1, sum(len(r["input_ids"]) for r in val_rows))
    marks = clock.marks
    timed_tokens = marks[-1][1] - marks[1][1]
    timed_seconds = marks[-1][0] - marks[1][0]
    return Calibration(
        steps_timed=len(marks) - 2, seconds_per_step=a, seconds_per_token=b, first_step_s=first,
        eval_seconds_per_token=eval_per_token, load_s=load_s, peak_rss_mb=peak_rss_mb(),
        tokens_per_s=timed_tokens / timed_seconds if timed_seconds > 0 else 0.0, rows=len(sample),
        bf16=use_bf16(cfg), load_average=round(os.getloadavg()[0], 2), cores=physical_cores(),
    )
