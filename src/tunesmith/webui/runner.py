"""The supervisor of one web-UI job: ``python -m tunesmith.webui.runner JOB_DIR``.

It runs the job's command (from ``JOB_DIR/job.json``) with its output in ``console.log`` and, when
the command ends for whatever reason, records the exit code in ``exit.json``. It ignores the stop
signals sent to its process group: the training process decides how to stop (train/stop.py), and
the supervisor stays to write down how it ended. Only the standard library and utils are imported,
so it starts in milliseconds.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from tunesmith.utils.io import write_json


def run(job_dir: Path) -> int:
    spec = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)  # a handler (not SIG_IGN), so the child keeps the defaults
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TUNESMITH_NO_PROGRESS": "1", "COLUMNS": "120"}
    returncode = -1
    try:
        with (job_dir / "console.log").open("ab") as log:
            log.write(f"$ {shlex.join(spec['command'])}\n".encode())
            log.flush()
            proc = subprocess.Popen(spec["command"], cwd=spec["cwd"], stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=env)
            returncode = proc.wait()
    finally:
        write_json(job_dir / "exit.json", {"returncode": returncode, "ended": time.time()})
    return returncode


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tunesmith.webui.runner JOB_DIR")
    sys.exit(0 if run(Path(sys.argv[1])) == 0 else 1)


if __name__ == "__main__":
    main()
