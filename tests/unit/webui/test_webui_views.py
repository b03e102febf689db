"""What the UI shows about a job, built from a job folder written by hand (no processes)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from tunesmith.webui import views
from tunesmith.webui.jobs import EXIT_FILE, JOB_FILE, STOP_FILE, Job


def _job(tmp_path: Path, *, stopped: bool = False) -> Job:
    out = tmp_path / "run"
    (out / "checkpoint-5").mkdir(parents=True)
    (out / "checkpoint-7").mkdir()
    started = time.time() - 30
    rows = [{"step": 1, "max_steps": 100, "loss": 2.5, "time": started + 5},
            {"step": 5, "max_steps": 100, "loss": 2.0, "time": started + 8},
            {"step": 5, "max_steps": 100, "eval_loss": 2.2, "time": started + 9},
            {"step": 7, "max_steps": 100, "loss": 1.5, "time": started + 10},
            {"step": 7, "max_steps": 100, "train_runtime": 5.0, "train_loss": 2.0, "time": started + 11}]
    (out / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [{"step": 99, "loss": 9.0,
                                                                                  "time": started - 100}, *rows]))
    (out / "summary.json").write_text(json.dumps({
        "metrics": {"steps": 7, "wall_time_s": 12.0, "first_loss": 2.5, "final_loss": 1.5, "final_eval_loss": 2.2,
                    "tokens_per_s": 1234.5, "peak_rss_mb": 600},
        "base_vs_tuned": {"n": 4, "base": {"exact_match": 0.0}, "tuned": {"exact_match": 75.0}}}))
    job_dir = tmp_path / "jobs" / "0001-run"
    job_dir.mkdir(parents=True)
    spec = {"command": ["tunesmith", "train", "x.yaml"], "cwd": str(tmp_path), "output_dir": "run",
            "started": started, "pid": None, "create_time": None}
    (job_dir / JOB_FILE).write_text(json.dumps(spec))
    (job_dir / EXIT_FILE).write_text(json.dumps({"returncode": 0, "ended": started + 12}))
    if stopped:
        (job_dir / STOP_FILE).write_text("1\n")
    return Job(job_dir, spec)


def test_curve_has_both_series_typed_even_before_any_log() -> None:
    empty = views.curve_frame([])
    assert set(empty["series"]) == {"eval_loss", "loss"} and empty["value"].isna().all()
    assert empty["step"].max() > 0, "an empty plot still has a step axis"
    assert str(empty["step"].dtype) == "int64" and str(empty["value"].dtype) == "float64"


def test_status_result_and_curve_of_a_finished_job(tmp_path: Path) -> None:
    job = _job(tmp_path)
    assert job.state() == "finished"
    rows = job.log_rows()
    assert [r["step"] for r in rows][:2] == [1, 5], "rows from an older run in the same folder are ignored"
    frame = views.curve_frame(rows)
    assert list(frame[frame.series == "loss"]["value"]) == [2.5, 2.0, 1.5]
    assert list(frame[frame.series == "eval_loss"]["step"]) == [5]
    status = views.status_markdown(job, "en")
    assert "finished" in status and "step 7/100" in status and "loss 1.5" in status and "eval loss 2.2" in status
    result = views.result_markdown(job, "en")
    assert "7 steps" in result and "1,234 tokens/s" in result and "| exact_match | 0.0 | 75.0 |" in result
    assert "checkpoint-7" not in result, "a finished run is not offered for resuming"
    assert "Loss curve diagnosis" in result and "evidence" in result, result
    zh = views.status_markdown(job, "zh")
    assert "已完成" in zh and "步数 7/100" in zh
    assert not math.isnan(frame["value"].iloc[0])


def test_a_stopped_job_lists_its_checkpoints(tmp_path: Path) -> None:
    job = _job(tmp_path, stopped=True)
    assert job.state() == "stopped"
    result = views.result_markdown(job, "en")
    assert "checkpoint-5, checkpoint-7" in result and "resume_from_checkpoint" in result
    assert "检查点" in views.result_markdown(job, "zh")


def test_advice_reads_as_a_list_with_changes_first() -> None:
    report = {"changes": {"num_train_epochs": 8},
              "advice": [{"key": "lora_rank", "current": "8", "recommended": "8", "reason": "common range",
                          "source": "notes/001", "level": "ok", "details": []},
                         {"key": "num_train_epochs", "current": "3", "recommended": "8", "reason": "small data",
                          "source": "notes/002", "level": "warn", "details": ["a.json:3 is cut"]}]}
    text = views.advice_markdown(report, "en")
    assert text.startswith("Recommended changes: `num_train_epochs=8`")
    assert "⚠ `num_train_epochs`: 3 → **8**" in text and "a.json:3 is cut" in text and "notes/002" in text
    assert text.index("num_train_epochs") < text.index("lora_rank"), "warnings before settings that are fine"
    assert "✓ fine as they are: `lora_rank`" in text
    assert "无需修改" in views.advice_markdown({"advice": [], "changes": {}}, "zh")
