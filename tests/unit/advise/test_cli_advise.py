"""``tunesmith advise`` and ``tunesmith estimate`` end to end on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tunesmith.cli.main import app
from tunesmith.config import load_config

runner = CliRunner()


def _yaml(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text("# a run\n" + yaml.safe_dump(values), encoding="utf-8")
    return path


def test_advise_prints_the_table_and_writes_a_recommended_config(tmp_path: Path, tiny_train_overrides: dict) -> None:
    cfg = _yaml(tmp_path, {**tiny_train_overrides, "lora_alpha": 64, "warmup_ratio": 0.0, "eval_steps": 1})
    out = tmp_path / "advised.yaml"
    result = runner.invoke(app, ["advise", str(cfg), "--write", str(out), "--json", str(tmp_path / "a.json")],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in ("optimizer steps", "lora_alpha", "warmup_ratio", "eval_steps", "cutoff_len", "duplicates",
                 "notes/001"):
        assert text in result.output
    advised = load_config(out)
    assert advised.finetune.lora_alpha == 16 and 0.1 <= advised.train.warmup_ratio <= 0.2
    assert advised.train.eval_steps > 1
    assert "# a run" in out.read_text(), "the user's comments survive"
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["data"]["n_train"] == 16 and any(r["level"] == "warn" for r in report["advice"])


def test_advise_reports_truncated_examples_by_name(tmp_path: Path, tiny_train_overrides: dict) -> None:
    values = {**tiny_train_overrides, "cutoff_len": 24}
    result = runner.invoke(app, ["advise", *(f"{k}={v}" for k, v in values.items())], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "cutoff_len" in result.output and "train.json:" in result.output


def test_estimate_calibrates_and_lists_gpus_and_costs(tmp_path: Path, tiny_train_overrides: dict) -> None:
    cfg = _yaml(tmp_path, tiny_train_overrides)
    result = runner.invoke(app, ["estimate", str(cfg), "--steps", "3", "--json", str(tmp_path / "e.json")],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in ("This machine", "measured", "A100-80G", "火山方舟", "百炼"):
        assert text in result.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["workload"]["steps"] == 8  # 16 rows / batch 4 x 2 epochs
    assert report["machine"]["train_seconds"] > 0 and report["machine"]["calibration"]["steps_timed"] >= 1
    assert {g["gpu"] for g in report["gpus"]} >= {"T4", "4090", "H100"}
    assert not Path(tiny_train_overrides["output_dir"]).exists()


def test_estimate_target_too_small_gives_a_fitting_yaml(tmp_path: Path, tiny_train_overrides: dict) -> None:
    gpus = tmp_path / "gpus.yaml"
    gpus.write_text("defaults: {context_gb: 0, headroom: 1.0}\ngpus:\n"
                    "  tiny: {memory_gb: 0.0006, bf16_tflops: 1, fp32_tflops: 1, bandwidth_gbs: 10}\n")
    cfg = _yaml(tmp_path, {**tiny_train_overrides, "finetuning_type": "full", "learning_rate": 1e-5,
                           "per_device_train_batch_size": 16})
    out = tmp_path / "fits.yaml"
    result = runner.invoke(app, ["estimate", str(cfg), "--no-calibrate", "--gpus", str(gpus), "--target", "tiny",
                                 "--write", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Does not fit tiny" in result.output and "config that fits" in result.output
    fitted = load_config(out)
    assert (fitted.train.per_device_train_batch_size < 16 or fitted.finetune.finetuning_type == "lora"
            or fitted.train.gradient_checkpointing)
    assert fitted.train.per_device_train_batch_size * fitted.train.gradient_accumulation_steps == 16 or \
        fitted.finetune.finetuning_type == "lora"


def test_unknown_target_is_a_config_error(tmp_path: Path, tiny_train_overrides: dict) -> None:
    cfg = _yaml(tmp_path, tiny_train_overrides)
    result = runner.invoke(app, ["estimate", str(cfg), "--no-calibrate", "--target", "TPUv9"])
    assert result.exit_code != 0
    assert "unknown device" in str(result.exception) or "unknown device" in result.output


def test_advise_multi_stage_config_advises_each_stage(tmp_path: Path, tiny_train_overrides: dict) -> None:
    top = {k: v for k, v in tiny_train_overrides.items() if k not in ("dataset", "eval_dataset", "test_dataset")}
    cfg = _yaml(tmp_path, {**top, "stages": [{"stage": "sft", "dataset": "toy_train", "lora_alpha": 64},
                                             {"stage": "sft", "dataset": "toy_val"}]})
    out = tmp_path / "advised.yaml"
    result = runner.invoke(app, ["advise", str(cfg), "--write", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "stage 1/2" in result.output and "stage 2/2" in result.output
    stages = yaml.safe_load(out.read_text())["stages"]
    assert stages[0]["lora_alpha"] == 16 and stages[0]["val_size"] == 0.15 and stages[1]["val_size"] == 0.15
    load_config(out)
