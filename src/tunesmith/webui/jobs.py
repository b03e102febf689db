"""Training jobs started from the web UI: detached CLI processes that outlive the page (and the UI).

Each job has a folder under the jobs root holding

- ``config.yaml``: the exact config it trains (``tunesmith train config.yaml`` reproduces it),
- ``job.json``: the command, working directory, output_dir and the supervisor's pid + start time,
- ``console.log``: everything the command printed,
- ``stop_requested``: written when the user presses Stop,
- ``exit.json``: the command's exit code and end time, written by the supervisor (webui/runner.py).

The supervisor runs in its own session, so closing the browser, refreshing the page or restarting
the UI leaves the training alone; a new page (or a new UI process) finds the job again by reading
these files. The job's state is derived from them, never stored in two places. The loss curve
comes from the run's own ``train_log.jsonl`` (train/callbacks.py), which the Trainer writes live.

Stop sends SIGTERM to the job's process group: the training process (train/stop.py) finishes its
step, saves ``checkpoint-N`` and ends normally. "Force stop" sends SIGKILL.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.utils.errors import TunesmithError
from tunesmith.utils.io import write_json, write_text

JOB_FILE = "job.json"
CONFIG_FILE = "config.yaml"
CONSOLE_LOG = "console.log"
STOP_FILE = "stop_requested"
EXIT_FILE = "exit.json"
RUNNER_LOG = "runner.log"
JOB_FILES = (JOB_FILE, CONFIG_FILE, CONSOLE_LOG, STOP_FILE, EXIT_FILE, RUNNER_LOG)  # all a job writes in its folder
TRAIN_LOG = "train_log.jsonl"  # written by train.callbacks.JsonlLogger into output_dir

RUNNING, STOPPING, FINISHED, STOPPED, FAILED, LOST = "running", "stopping", "finished", "stopped", "failed", "lost"
BROKEN = "broken"  # its job.json cannot be read: listed (with the reason) rather than left out
ACTIVE_STATES = (RUNNING, STOPPING)


class JobError(TunesmithError):
    """A job cannot be started or stopped as asked."""

    title = "Job error"


def cli_command(*args: str) -> list[str]:
    """The tunesmith command line for ``args``: the entry point beside this Python, or ``-m``."""
    script = Path(sys.executable).with_name("tunesmith")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), *args]
    return [sys.executable, "-m", "tunesmith.cli.main", *args]


def shown_command(cmd: list[str]) -> str:
    """A command as a user would type it (``tunesmith ...`` rather than the entry point's full path)."""
    if cmd and Path(cmd[0]).name == "tunesmith":
        cmd = ["tunesmith", *cmd[1:]]
    return shlex.join(cmd)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(text).name or "run").strip("-.")[:40] or "run"


def _process(pid: int | None, create_time: float | None) -> Any:
    """The psutil.Process for a live (non-zombie) pid whose start time matches, else None."""
    import psutil

    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 1.0:
            return None  # the pid was reused by another program
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


def _broken_job(job_dir: Path, problem: str) -> Job:
    """A job whose job.json is unreadable: shown with the reason (its process is not known)."""
    return Job(job_dir, {"problem": problem, "cwd": str(job_dir), "output_dir": ".", "command": [],
                         "started": job_dir.stat().st_mtime, "pid": None, "create_time": None})


@dataclass
class Job:
    """A training job, read from its folder."""

    dir: Path
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def output_dir(self) -> Path:
        return Path(self.spec["cwd"]) / self.spec["output_dir"]

    @property
    def config_path(self) -> Path:
        return self.dir / CONFIG_FILE

    @property
    def command(self) -> str:
        return shown_command(self.spec["command"])

    @property
    def problem(self) -> str | None:
        """Why this job's own files cannot be read (None when they can)."""
        return self.spec.get("problem")

    def exit_info(self) -> dict[str, Any] | None:
        path = self.dir / EXIT_FILE
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:  # the job ended; how is unknown: shown as failed
            return {"returncode": None, "ended": path.stat().st_mtime, "problem": f"{EXIT_FILE}: {exc}"}

    def alive(self) -> bool:
        return _process(self.spec.get("pid"), self.spec.get("create_time")) is not None

    def state(self) -> str:
        """running, stopping, finished, stopped, failed, lost (ended without a trace), or broken."""
        if self.problem:
            return BROKEN
        stop = (self.dir / STOP_FILE).exists()
        info = self.exit_info()
        if info is None:
            if self.alive():
                return STOPPING if stop else RUNNING
            return STOPPED if stop else LOST
        if stop:
            return STOPPED
        return FINISHED if info.get("returncode") == 0 else FAILED

    def log_rows(self) -> list[dict[str, Any]]:
        """This job's rows of output_dir/train_log.jsonl (older runs' rows in the same folder are skipped)."""
        path = self.output_dir / TRAIN_LOG
        if not path.exists():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written right now
            if row.get("time", 0) >= self.spec["started"] - 1:
                rows.append(row)
        return rows

    def console_tail(self, lines: int = 200) -> str:
        path = self.dir / CONSOLE_LOG
        if not path.exists():
            return ""
        text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
        text = "\n".join(part.rsplit("\r", 1)[-1] for part in text.split("\n"))  # progress-bar redraws
        return "\n".join(text.splitlines()[-lines:])

    def summary(self) -> dict[str, Any]:
        """The run's summary.json (written when training ends), or {}."""
        path = self.output_dir / "summary.json"
        if not path.exists() or path.stat().st_mtime < self.spec["started"]:
            return {}
        return json.loads(path.read_text(encoding="utf-8"))

    def checkpoints(self) -> list[Path]:
        found = [p for p in self.output_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
        return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


class JobManager:
    """Start, find and stop training jobs kept under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._children: dict[int, subprocess.Popen] = {}  # reaped here so they do not linger as zombies

    def next_dir(self, output_dir: str) -> Path:
        """The folder the next job for ``output_dir`` will use (shown in the UI before it starts)."""
        numbers = [int(p.name.split("-", 1)[0]) for p in self.root.glob("*-*") if p.name.split("-", 1)[0].isdigit()]
        return self.root / f"{max(numbers, default=0) + 1:04d}-{_slug(output_dir)}"

    def jobs(self) -> list[Job]:
        """Every job, newest first."""
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[pid]
        out = []
        for path in self.root.glob(f"*/{JOB_FILE}"):
            try:
                out.append(Job(path.parent, json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, json.JSONDecodeError) as exc:
                out.append(_broken_job(path.parent, f"{JOB_FILE} cannot be read ({exc})"))
        return sorted(out, key=lambda j: j.spec.get("started", 0), reverse=True)

    def get(self, job_id: str) -> Job | None:
        return next((j for j in self.jobs() if j.id == job_id), None)

    def active(self) -> Job | None:
        """The job that is running or stopping, if any."""
        return next((j for j in self.jobs() if j.state() in ACTIVE_STATES), None)

    def latest(self) -> Job | None:
        """The active job, else the newest one (what a freshly opened page shows)."""
        jobs = self.jobs()
        return next((j for j in jobs if j.state() in ACTIVE_STATES), jobs[0] if jobs else None)

    def start(self, config_yaml: str, output_dir: str, *, cwd: str | Path | None = None) -> Job:
        """Write the config and start ``tunesmith train`` on it, detached. One job at a time."""
        running = self.active()
        if running is not None:
            raise JobError(f"job {running.id} is still {running.state()}", hint="stop it first, or wait for it to end")
        job_dir = self.next_dir(output_dir)
        job_dir.mkdir(parents=True)
        write_text(job_dir / CONFIG_FILE, config_yaml)
        spec: dict[str, Any] = {
            "command": cli_command("train", str(job_dir.resolve() / CONFIG_FILE)),
            "cwd": str(Path(cwd or os.getcwd()).resolve()),
            "output_dir": output_dir,
            "started": time.time(),
            "pid": None,
            "create_time": None,
        }
        write_json(job_dir / JOB_FILE, spec)  # the supervisor reads the command from here
        with (job_dir / RUNNER_LOG).open("ab") as runner_log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tunesmith.webui.runner", str(job_dir.resolve())],
                cwd=spec["cwd"], stdin=subprocess.DEVNULL, stdout=runner_log, stderr=runner_log,
                start_new_session=True,  # its own process group: outlives the UI, stopped as a group
            )
        self._children[proc.pid] = proc
        import psutil

        spec.update(pid=proc.pid, create_time=psutil.Process(proc.pid).create_time())
        write_json(job_dir / JOB_FILE, spec)
        return Job(job_dir, spec)

    def stop(self, job: Job, *, force: bool = False) -> None:
        """Ask the job to save a checkpoint and stop (SIGTERM), or end it now (force: SIGKILL)."""
        if job.state() not in ACTIVE_STATES:
            return
        write_text(job.dir / STOP_FILE, f"{time.time()}\n")
        proc = _process(job.spec.get("pid"), job.spec.get("create_time"))
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL if force else signal.SIGTERM)  # the supervisor leads its group
        except ProcessLookupError:
            pass

    def delete(self, job: Job) -> None:
        """Forget a finished job: remove the files the job wrote. Its run folder (output_dir) is kept, and so
        is anything else found in the job's folder (the folder then stays, and the error says what is there)."""
        if job.state() in ACTIVE_STATES:
            raise JobError(f"job {job.id} is still {job.state()}", hint="stop it first")
        if not job.problem and job.output_dir.resolve().is_relative_to(job.dir.resolve()):
            raise JobError(f"job {job.id}: its run folder {job.output_dir} is inside the job's folder {job.dir}",
                           hint="move the run elsewhere first; nothing was deleted")
        for name in JOB_FILES:
            (job.dir / name).unlink(missing_ok=True)
        left = sorted(p.name for p in job.dir.iterdir())
        if left:
            raise JobError(f"job {job.id}: its own files are removed, but {job.dir} also holds "
                           f"{', '.join(left)}, which the job did not write; they were kept",
                           hint="move or remove them yourself")
        job.dir.rmdir()
