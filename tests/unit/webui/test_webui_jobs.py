"""Training jobs: detached `tunesmith train`, found again by a new manager, stopped with a checkpoint."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil
import pytest

from tunesmith.webui import form
from tunesmith.webui.jobs import JOB_FILE, Job, JobError, JobManager


def _wait(predicate, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _yaml(overrides: dict) -> str:
    return form.to_yaml({**form.defaults(), **overrides})


def test_job_runs_detached_is_found_again_and_stops_with_a_checkpoint(tiny_train_overrides: dict,
                                                                     tmp_path: Path) -> None:
    jobs = JobManager(tmp_path / "jobs")
    cfg = {**tiny_train_overrides, "max_steps": 5000, "save_steps": 100000, "eval_dataset": "", "num_threads": 1}
    job = jobs.start(_yaml(cfg), cfg["output_dir"], cwd=tmp_path)
    try:
        assert job.id == "0001-run" and job.config_path.exists()
        assert job.command.startswith("tunesmith train ") and job.command.endswith("0001-run/config.yaml")
        assert os.getpgid(job.spec["pid"]) == job.spec["pid"], "the job leads its own process group"
        with pytest.raises(JobError, match="still running"):
            jobs.start(_yaml(cfg), cfg["output_dir"], cwd=tmp_path)
        _wait(lambda: len(job.log_rows()) >= 3, 120, "logged steps")
        assert job.state() == "running"

        again = JobManager(tmp_path / "jobs")  # a refreshed page or a restarted UI
        found = again.latest()
        assert found is not None and found.id == job.id and found.state() == "running"
        again.stop(found)
        assert found.state() in ("stopping", "stopped")
        _wait(lambda: found.state() == "stopped", 120, "the job to stop")
    finally:
        if job.alive():
            os.killpg(job.spec["pid"], 9)
    last = max(r["step"] for r in job.log_rows())
    assert 3 <= last < 5000
    assert [p.name for p in job.checkpoints()] == [f"checkpoint-{last}"]
    assert job.exit_info()["returncode"] == 0, job.console_tail()
    assert "Done" in job.console_tail(), "the console log holds what the command printed"
    assert jobs.next_dir("saves/other").name == "0002-other"


def test_a_failing_run_is_reported_as_failed(tiny_train_overrides: dict, tmp_path: Path) -> None:
    jobs = JobManager(tmp_path / "jobs")
    cfg = {**tiny_train_overrides, "dataset": "no_such_dataset"}
    job = jobs.start(_yaml(cfg), cfg["output_dir"], cwd=tmp_path)
    _wait(lambda: job.state() not in ("running", "stopping"), 120, "the job to end")
    assert job.state() == "failed" and job.exit_info()["returncode"] != 0
    assert "no_such_dataset" in job.console_tail()
    jobs.delete(job)
    assert jobs.jobs() == []


def test_state_comes_from_the_files_and_a_reused_pid_is_not_mistaken_for_the_job(tmp_path: Path) -> None:
    me = psutil.Process(os.getpid())
    job_dir = tmp_path / "0001-x"
    job_dir.mkdir()
    spec = {"command": ["true"], "cwd": str(tmp_path), "output_dir": "x", "started": time.time(),
            "pid": me.pid, "create_time": me.create_time()}
    (job_dir / JOB_FILE).write_text(json.dumps(spec))
    assert Job(job_dir, spec).state() == "running"
    reused = {**spec, "create_time": me.create_time() - 1000}
    assert Job(job_dir, reused).state() == "lost", "another program now holds that pid"
    (job_dir / "exit.json").write_text(json.dumps({"returncode": 1, "ended": time.time()}))
    assert Job(job_dir, spec).state() == "failed"


def _finished_job(root: Path, output_dir: str) -> Job:
    job_dir = root / "0001-x"
    job_dir.mkdir(parents=True)
    spec = {"command": ["true"], "cwd": str(root.parent), "output_dir": output_dir, "started": time.time(),
            "pid": None, "create_time": None}
    (job_dir / JOB_FILE).write_text(json.dumps(spec))
    for name in ("config.yaml", "console.log", "runner.log", "exit.json"):
        (job_dir / name).write_text("{}")
    return Job(job_dir, spec)


def test_delete_removes_only_what_the_job_wrote(tmp_path: Path) -> None:
    jobs = JobManager(tmp_path / "jobs")
    job = _finished_job(jobs.root, "saves/run")
    (job.dir / "notes.md").write_text("the user's")
    with pytest.raises(JobError, match="notes.md"):
        jobs.delete(job)
    assert [p.name for p in job.dir.iterdir()] == ["notes.md"], "the job's own files go, the user's stays"
    (job.dir / "notes.md").unlink()
    (job.dir / JOB_FILE).write_text(json.dumps(job.spec))
    jobs.delete(job)
    assert not job.dir.exists()


def test_delete_refuses_a_job_whose_run_folder_is_inside_it(tmp_path: Path) -> None:
    jobs = JobManager(tmp_path / "jobs")
    job = _finished_job(jobs.root, "jobs/0001-x/run")
    (job.output_dir).mkdir()
    (job.output_dir / "adapter_model.safetensors").write_text("weights")
    with pytest.raises(JobError, match="inside the job's folder"):
        jobs.delete(job)
    assert (job.output_dir / "adapter_model.safetensors").exists() and (job.dir / JOB_FILE).exists()


def test_a_job_with_unreadable_files_is_listed_not_dropped(tmp_path: Path) -> None:
    from tunesmith.webui.jobs import BROKEN

    jobs = JobManager(tmp_path / "jobs")
    job = _finished_job(jobs.root, "saves/run")
    (job.dir / "exit.json").write_text('{"returncode": ')  # cut off
    assert jobs.get(job.id).state() == "failed" and "exit.json" in jobs.get(job.id).exit_info()["problem"]
    (job.dir / JOB_FILE).write_text("{not json")
    listed = jobs.jobs()
    assert [j.id for j in listed] == [job.id], "a job whose job.json is broken must not vanish"
    assert listed[0].state() == BROKEN and "job.json cannot be read" in listed[0].problem
    from tunesmith.webui import views

    assert "job.json cannot be read" in views.status_markdown(listed[0], "en")
    jobs.delete(listed[0])
    assert not job.dir.exists()
