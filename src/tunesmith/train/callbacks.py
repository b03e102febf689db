"""Trainer callbacks: a live JSON-lines log (read by diagnose, plots and the web UI) and throughput."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tunesmith.utils.io import write_jsonl

LOG_FILE = "train_log.jsonl"


class JsonlLogger(TrainerCallback):
    """Append every log event (loss, eval_loss, perplexity, lr, tokens/s) to output_dir/train_log.jsonl.

    Only the main process (rank 0) writes. A resumed run first drops the rows logged after the step it
    resumes from (a run killed after its last checkpoint logged steps that are now trained again), so the
    log reads as one run whose step count continues. ``tokens_per_s`` counts this process's tokens.
    """

    def __init__(self, output_dir: str | Path, *, append: bool = False) -> None:
        self.path = Path(output_dir) / LOG_FILE
        self.append = append
        self.tokens = 0
        self.start = time.perf_counter()
        self.vocab_size: int | None = None

    def add_tokens(self, n: int) -> None:
        self.tokens += n

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.start = time.perf_counter()
        self.tokens = 0
        if getattr(state, "is_world_process_zero", True):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if state.global_step > 0 and self.path.exists():  # resumed from the checkpoint of that step
                kept = [r for r in read_log(self.path.parent) if r.get("step", 0) <= state.global_step
                        and "train_runtime" not in r]
                write_jsonl(self.path, kept)
            elif not self.append and self.path.exists():
                self.path.unlink()
        config = getattr(kw.get("model"), "config", None)
        text = getattr(config, "text_config", None) or config
        # diagnose compares a loss with ln(vocabulary): close to it, the model predicts almost uniformly.
        self.vocab_size = getattr(text, "vocab_size", None)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
        if not logs or not getattr(state, "is_world_process_zero", True):
            return
        row: dict[str, Any] = {"step": state.global_step, "max_steps": state.max_steps,
                               "epoch": round(state.epoch or 0.0, 4), "time": round(time.time(), 3)}
        row.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})
        if self.vocab_size:
            row["vocab_size"] = self.vocab_size
        for key, ppl in (("loss", "perplexity"), ("eval_loss", "eval_perplexity")):
            if key in row and row[key] < 50:
                row[ppl] = math.exp(row[key])
        elapsed = time.perf_counter() - self.start
        if "loss" in logs and elapsed > 0:
            row["tokens_per_s"] = round(self.tokens / elapsed, 1)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


def read_log(output_dir: str | Path) -> list[dict[str, Any]]:
    """Rows of a run's train_log.jsonl ([] when absent)."""
    path = Path(output_dir) / LOG_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
