"""The Evaluate and Export tabs run the real `tunesmith eval` / `tunesmith export` on a tiny run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tunesmith.config import load_config
from tunesmith.train.sft import run_sft
from tunesmith.webui import commands, form
from tunesmith.webui.jobs import JobManager
from tunesmith.webui.tab_tools import EvalTab, ExportTab, new_files, report_markdown, suggest_export_dir
from tunesmith.webui.ui import Context


@pytest.fixture
def tiny_run(tiny_train_overrides: dict) -> tuple[dict, Path]:
    cfg = load_config(None, {**tiny_train_overrides, "max_steps": 2, "eval_dataset": ""})
    return tiny_train_overrides, run_sft(cfg).output_dir


def _last(steps: list) -> tuple[str, str, str]:
    assert steps, "the command yields at least once"
    return steps[-1]


def test_evaluate_tab_runs_tunesmith_eval_and_shows_its_report(tiny_run: tuple[dict, Path], tmp_path: Path) -> None:
    assert commands.available("eval"), "the tab's own probe must find `tunesmith eval` in this installation"
    overrides, run = tiny_run
    flat = {**form.defaults(), **load_config(None, overrides).flat(), "eval_samples": 3, "max_new_tokens": 4}
    tab = EvalTab(Context(JobManager(tmp_path / "jobs"), tmp_path))
    shown, output, report = _last(list(tab.run_command("en", str(run), [], [""], form.form_values(flat))))
    assert shown.startswith("tunesmith eval ") and shown.endswith("eval.yaml")
    assert "Exited with code 0" in output, output[-2000:]
    assert (run / "eval").is_dir() and "metrics.json" in report, report


def test_export_tab_runs_tunesmith_export(tiny_run: tuple[dict, Path], tmp_path: Path) -> None:
    assert commands.available("export"), "the tab's own probe must find `tunesmith export` in this installation"
    overrides, run = tiny_run
    export_dir = tmp_path / "exports" / "tiny"
    flat = {**form.defaults(), **load_config(None, overrides).flat(), "export_dir": str(export_dir)}
    tab = ExportTab(Context(JobManager(tmp_path / "jobs"), tmp_path))
    _, output, report = _last(list(tab.run_command("en", str(run), [], [], form.form_values(flat))))
    assert "Exited with code 0" in output, output[-2000:]
    assert (export_dir / "tunesmith_export.json").exists() and "tunesmith_export.json" in report


def test_reports_and_export_dir_suggestion(tmp_path: Path) -> None:
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "report.md").write_text("# Report\n\n| metric | run |\n")
    (tmp_path / "old.md").write_text("old")
    os.utime(tmp_path / "old.md", (time.time() - 3600, time.time() - 3600))
    files = new_files([tmp_path], since=time.time() - 60)
    assert files == [tmp_path / "eval" / "report.md"], "only files the command just wrote"
    assert report_markdown(files).startswith("# Report") and str(files[0]) in report_markdown(files)
    assert suggest_export_dir("saves/quickstart", "") == "exports/quickstart"
    assert suggest_export_dir("saves/quickstart", "mine") == "mine"
