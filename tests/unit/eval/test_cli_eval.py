"""The eval / diagnose commands: help, diagnose output, and the diagnosis at the end of training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunesmith.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize("cmd", [["eval", "--help"], ["diagnose", "--help"]])
def test_help_has_examples(cmd: list[str]) -> None:
    result = runner.invoke(app, cmd, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output and "tunesmith " + cmd[0] in result.output


def _rising_log(run: Path) -> None:
    run.mkdir()
    rows = [{"step": s, "max_steps": 50, "epoch": s / 50, "loss": 1.0 + s / 20} for s in range(5, 51, 5)]
    (run / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_diagnose_prints_case_with_evidence_and_json(tmp_path: Path) -> None:
    _rising_log(tmp_path / "run")
    result = runner.invoke(app, ["diagnose", str(tmp_path / "run")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Not converging" in result.output and "steps 5-10" in result.output
    result = runner.invoke(app, ["diagnose", str(tmp_path / "run"), "--json"], terminal_width=200)
    data = json.loads(result.output)
    assert data["case"] == "rising" and data["max_steps"] == 50


def test_diagnose_on_a_folder_without_a_log_fails_clearly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["diagnose", str(tmp_path)])
    assert result.exit_code != 0 and "not a tunesmith training run" in str(result.exception)


def test_train_prints_the_diagnosis_at_the_end(tiny_train_overrides: dict) -> None:
    args = ["train"] + [f"{k}={v}" for k, v in {**tiny_train_overrides, "max_steps": 6}.items()]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Loss curve diagnosis" in result.output and "evidence" in result.output
