"""SIGTERM during training: the run saves checkpoint-N at the step it reached and ends normally."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml


def _wait_for_step(log: Path, proc: subprocess.Popen, step: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"training ended early (exit {proc.returncode})")
        if log.exists() and any(json.loads(line).get("step", 0) >= step
                                for line in log.read_text().splitlines() if line.strip()):
            return
        time.sleep(0.2)
    raise AssertionError(f"no step {step} in {log} after {timeout}s")


def _train_then_sigterm(config: Path, out: Path) -> None:
    """Start `tunesmith train CONFIG`, send SIGTERM after step 3, and expect a normal exit."""
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith.cli.main", "train", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"})
    try:
        _wait_for_step(out / "train_log.jsonl", proc, 3)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output.decode(errors="replace")[-3000:]


def test_sigterm_saves_a_checkpoint_and_stops(tiny_train_overrides: dict, tmp_path: Path) -> None:
    out = Path(tiny_train_overrides["output_dir"])
    config = tmp_path / "config.yaml"
    # Far more steps than the test waits for, and no periodic checkpoint before the stop.
    config.write_text(yaml.safe_dump({**tiny_train_overrides, "max_steps": 5000, "save_steps": 100000,
                                      "eval_dataset": "", "num_threads": 1}))
    _train_then_sigterm(config, out)
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    last = max(r["step"] for r in rows)
    assert 3 <= last < 5000
    assert (out / f"checkpoint-{last}" / "adapter_model.safetensors").exists(), sorted(p.name for p in out.iterdir())
    assert (out / f"checkpoint-{last}" / "trainer_state.json").exists(), "resumable: optimizer and state are saved"
    assert (out / "adapter_model.safetensors").exists(), "the stopped run still saves its adapter"


def test_sigterm_stops_a_preference_stage_with_a_checkpoint(tiny_train_overrides: dict, dataset_dir: Path,
                                                           tmp_path: Path) -> None:
    # Stages on TRL's trainers (dpo here; kto, rm and grpo use the same callback) stop the same way.
    pairs = [{"question": f"What is {i} + {i}?", "positive_answer": str(2 * i), "negative_answer": "I do not know."}
             for i in range(12)]
    (dataset_dir / "pairs.json").write_text(json.dumps(pairs))
    info = json.loads((dataset_dir / "dataset_info.json").read_text())
    info["toy_pairs"] = {"file_name": "pairs.json"}
    (dataset_dir / "dataset_info.json").write_text(json.dumps(info))
    out = Path(tiny_train_overrides["output_dir"])
    config = tmp_path / "dpo.yaml"
    config.write_text(yaml.safe_dump({**tiny_train_overrides, "stage": "dpo", "dataset": "toy_pairs",
                                      "eval_dataset": "", "test_dataset": "", "max_steps": 5000,
                                      "save_steps": 100000, "logging_steps": 1, "num_threads": 1}))
    _train_then_sigterm(config, out)
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    last = max(r.get("step", 0) for r in rows)
    assert 3 <= last < 5000
    assert (out / f"checkpoint-{last}" / "adapter_model.safetensors").exists(), sorted(p.name for p in out.iterdir())
    assert (out / "adapter_model.safetensors").exists()
