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


def test_sigterm_saves_a_checkpoint_and_stops(tiny_train_overrides: dict, tmp_path: Path) -> None:
    out = Path(tiny_train_overrides["output_dir"])
    config = tmp_path / "config.yaml"
    # Far more steps than the test waits for, and no periodic checkpoint before the stop.
    config.write_text(yaml.safe_dump({**tiny_train_overrides, "max_steps": 5000, "save_steps": 100000,
                                      "eval_dataset": "", "num_threads": 1}))
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
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    last = max(r["step"] for r in rows)
    assert 3 <= last < 5000
    assert (out / f"checkpoint-{last}" / "adapter_model.safetensors").exists(), sorted(p.name for p in out.iterdir())
    assert (out / f"checkpoint-{last}" / "trainer_state.json").exists(), "resumable: optimizer and state are saved"
    assert (out / "adapter_model.safetensors").exists(), "the stopped run still saves its adapter"
