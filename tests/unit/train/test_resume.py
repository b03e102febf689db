"""Resume after a crash: torn checkpoints are skipped, and a run killed with SIGKILL at a random step,
resumed with resume_from_checkpoint=last, ends where an uninterrupted run ends.

Bound: the resumed run replays the same arithmetic (fp32 weights and optimizer state restored bit for
bit, the RNG state and the position in the data restored, the same thread count), so its losses and
adapter must match the uninterrupted run to fp32 rounding; we allow 1e-6 and have measured 0.0.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tunesmith.config.load import load_config
from tunesmith.train.checkpoints import checkpoint_problem, last_complete_checkpoint
from tunesmith.train.sft import run_sft
from tunesmith.utils.errors import ConfigError

BOUND = 1e-6
STEPS = 40


def _log(out: Path) -> list[dict]:
    path = out / "train_log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in _log(out) if "loss" in r}


def _max_adapter_diff(a: Path, b: Path) -> float:
    wa, wb = load_file(a / "adapter_model.safetensors"), load_file(b / "adapter_model.safetensors")
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def _run_config(overrides: dict, out: Path) -> dict:
    return {**overrides, "output_dir": str(out), "max_steps": STEPS, "save_steps": 3, "logging_steps": 1,
            "eval_dataset": "", "test_dataset": "", "num_threads": 1, "report_to": "none", "learning_rate": 1e-2,
            "plot_loss": False}


def kill_at_step(config: Path, out: Path, step: int, timeout: float = 180) -> int:
    """Run `tunesmith train CONFIG` and SIGKILL it once its log reaches ``step``; returns the last logged step."""
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith.cli.main", "train", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if any(r.get("step", 0) >= step for r in _log(out)):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"the run ended by itself (exit {proc.returncode}) before the kill"
    return max(r["step"] for r in _log(out))


def test_torn_checkpoints_are_skipped_with_a_message(tiny_train_overrides: dict, capsys: pytest.CaptureFixture
                                                     ) -> None:
    out = Path(tiny_train_overrides["output_dir"])
    base = {**tiny_train_overrides, "max_steps": 2, "save_steps": 2, "eval_dataset": "", "report_to": "none"}
    run_sft(load_config(None, base))
    good = out / "checkpoint-2"
    assert checkpoint_problem(good) is None
    # What a kill during each file's write leaves behind, newest first.
    cuts = {"checkpoint-5": "optimizer.pt", "checkpoint-4": "adapter_model.safetensors",
            "checkpoint-3": "trainer_state.json"}
    for name, cut in cuts.items():
        shutil.copytree(good, out / name)
        state = json.loads((out / name / "trainer_state.json").read_text())
        (out / name / "trainer_state.json").write_text(json.dumps({**state, "global_step": int(name.split("-")[1])}))
        data = (out / name / cut).read_bytes()
        (out / name / cut).write_bytes(data[: len(data) // 2])
    found, skipped = last_complete_checkpoint(out)
    assert found == good
    assert [(p.name, why.split()[0]) for p, why in skipped] == [
        ("checkpoint-5", "optimizer.pt"), ("checkpoint-4", "adapter_model.safetensors"),
        ("checkpoint-3", "trainer_state.json")]
    capsys.readouterr()
    resumed = run_sft(load_config(None, {**base, "max_steps": 3, "resume_from_checkpoint": "last"}))
    printed = capsys.readouterr().out
    assert "checkpoint-5 is incomplete (optimizer.pt is cut short" in printed
    assert "resuming from checkpoint-2" in printed and resumed.metrics["steps"] == 3
    with pytest.raises(ConfigError, match="checkpoint-4' is incomplete"):
        run_sft(load_config(None, {**base, "max_steps": 6, "resume_from_checkpoint": str(out / "checkpoint-4")}))


def test_kill9_at_a_random_step_then_resume_equals_an_uninterrupted_run(tiny_train_overrides: dict,
                                                                        tmp_path: Path) -> None:
    whole = run_sft(load_config(None, _run_config(tiny_train_overrides, tmp_path / "whole"))).output_dir
    out = tmp_path / "killed"
    config = tmp_path / "killed.yaml"
    config.write_text(yaml.safe_dump(_run_config(tiny_train_overrides, out)))
    step = random.SystemRandom().randint(5, STEPS - 10)
    reached = kill_at_step(config, out, step)
    last, _ = last_complete_checkpoint(out)
    assert last is not None, f"killed at step {reached} with no complete checkpoint"
    resumed_from = int(last.name.split("-")[1])
    assert resumed_from <= reached < STEPS
    started = time.time()
    run_sft(load_config(None, {**_run_config(tiny_train_overrides, out), "resume_from_checkpoint": "last"}))
    rows = [r for r in _log(out) if "loss" in r]
    why = f"(killed at step {reached}, resumed from step {resumed_from})"
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1)), f"the log must continue the step count {why}"
    # A restart from step 0 would have logged steps 1..N again in the new process.
    new = [r["step"] for r in rows if r["time"] >= started]
    assert new == list(range(resumed_from + 1, STEPS + 1)), f"the resumed process logged steps {new} {why}"
    expected = _losses(whole)
    assert max(abs(r["loss"] - expected[r["step"]]) for r in rows) <= BOUND, why
    assert _max_adapter_diff(out, whole) <= BOUND, why
    assert torch.isfinite(torch.tensor([r["loss"] for r in rows])).all()


def test_a_run_killed_after_its_last_checkpoint_finishes_without_training(tiny_train_overrides: dict,
                                                                          capsys: pytest.CaptureFixture) -> None:
    # Killed while finishing (saving, or scoring base vs tuned): checkpoint-4 is the run's last step.
    out = Path(tiny_train_overrides["output_dir"])
    base = {**tiny_train_overrides, "max_steps": 4, "save_steps": 2, "eval_dataset": "", "report_to": "none",
            "lr_scheduler_type": "constant"}  # a constant rate: one step too many would move the weights
    run_sft(load_config(None, base))
    (out / "adapter_model.safetensors").unlink()
    capsys.readouterr()
    resumed = run_sft(load_config(None, {**base, "resume_from_checkpoint": "last"}))
    assert "checkpoint-4 holds the run's last step (4): nothing left to train" in capsys.readouterr().out
    assert resumed.metrics["steps"] == 4
    assert [r["step"] for r in _log(out) if "loss" in r] == [1, 2, 3, 4], "no step past the end"
    assert _max_adapter_diff(out, out / "checkpoint-4") == 0.0
