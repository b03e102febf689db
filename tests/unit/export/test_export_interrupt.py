"""Ctrl-C or kill -9 in the middle of ``tunesmith export`` (a real process, a real signal) leaves no
export_dir behind, and an earlier export that was being replaced stays whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunesmith.export.run import MANIFEST


def _start(model: Path, adapter: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    # Many long check generations keep the export busy in its partial folder long enough to be interrupted.
    cmd = [sys.executable, "-m", "tunesmith.cli.main", "export", "--adapter", str(adapter), "--model", str(model),
           "--export-dir", str(out), "template=gemma", "bf16=false", "export_check_samples=8",
           "export_check_tokens=400", "export_size=0.00003", *extra]
    env = {**os.environ, "TUNESMITH_NO_PROGRESS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _partials(out: Path) -> list[Path]:
    return list(out.parent.glob(f".{out.name}.partial*"))


def _interrupt_mid_export(proc: subprocess.Popen[str], out: Path, signum: int) -> None:
    """Wait until the merged weights are being written into the partial folder, then send ``signum``."""
    deadline = time.time() + 300
    while time.time() < deadline:
        if any((p / "config.json").exists() for p in _partials(out)):
            break
        if proc.poll() is not None:
            pytest.fail(f"export ended (exit {proc.returncode}) before it could be interrupted:\n"
                        f"{proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("the export never started writing")
    assert proc.poll() is None, "export finished before it could be interrupted"
    proc.send_signal(signum)
    proc.wait(timeout=120)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_interrupted_export_leaves_no_export_dir(signum: int, tiny_model_dir: Path, tiny_adapters: dict[str, Path],
                                                 tmp_path: Path) -> None:
    out = tmp_path / "exports" / "merged"
    proc = _start(tiny_model_dir, tiny_adapters["alpha"], out)
    _interrupt_mid_export(proc, out, signum)
    assert not out.exists()
    assert not (out.parent / f"{out.name}.failed").exists()
    if signum == signal.SIGINT:  # Python runs its cleanup: nothing at all is left, exit 130
        assert proc.returncode == 130, proc.stdout.read() if proc.stdout else ""
        assert _partials(out) == []
    else:  # kill -9 runs no cleanup: at most the hidden partial folder, never export_dir itself
        assert proc.returncode == -signal.SIGKILL
        assert all(p.name.startswith(f".{out.name}.partial") for p in out.parent.iterdir())


def test_kill_while_replacing_an_earlier_export_keeps_it(tiny_model_dir: Path, tiny_adapters: dict[str, Path],
                                                         tmp_path: Path) -> None:
    out = tmp_path / "exports" / "merged"
    first = subprocess.run([sys.executable, "-m", "tunesmith.cli.main", "export", "--adapter",
                            str(tiny_adapters["alpha"]), "--model", str(tiny_model_dir), "--export-dir", str(out),
                            "template=gemma", "bf16=false", "export_check_samples=1", "export_check_tokens=4"],
                           capture_output=True, text=True, env={**os.environ, "TUNESMITH_NO_PROGRESS": "1"})
    assert first.returncode == 0, first.stdout + first.stderr
    before = {p.name: p.stat().st_size for p in out.iterdir()}
    proc = _start(tiny_model_dir, tiny_adapters["beta"], out, "overwrite_export_dir=true")
    _interrupt_mid_export(proc, out, signal.SIGKILL)
    assert {p.name: p.stat().st_size for p in out.iterdir()} == before
    assert json.loads((out / MANIFEST).read_text())["adapter_name_or_path"] == str(tiny_adapters["alpha"])
