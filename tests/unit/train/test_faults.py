"""Disk faults, made real: a tmpfs too small for the second checkpoint, a read-only mount, a path
through a file. Training runs as ``tunesmith train`` in a subprocess, exactly as a user runs it.

Mounting needs root (CI runs as root); elsewhere the tmpfs tests are skipped with that reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tunesmith.cli import main as cli_main

PAGE = 4096


def _mount(path: Path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'not root'}); the fault tests need one")


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for path in made:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _train(tiny_model_dir: Path, dataset_dir: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "tunesmith.cli.main", "train", f"model_name_or_path={tiny_model_dir}",
           "template=gemma", f"dataset_dir={dataset_dir}", "dataset=toy_train", f"output_dir={out}",
           "save_steps=2", "save_total_limit=5", "report_summary=false", "plot_loss=false", "torch_compile=false",
           "bf16=false", "per_device_train_batch_size=4", *extra]
    env = {**os.environ, "TUNESMITH_NO_PROGRESS": "1", "COLUMNS": "300"}
    env.pop("TUNESMITH_DEBUG", None)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def _pages(folder: Path) -> int:
    return sum(-(-p.stat().st_size // PAGE) * PAGE for p in folder.rglob("*") if p.is_file())


def test_full_disk_during_a_checkpoint_keeps_the_previous_one_and_says_so(tiny_model_dir: Path, dataset_dir: Path,
                                                                          tmp_path: Path, mounts: list[Path]) -> None:
    # How much one checkpoint takes: a reference run on the ordinary disk.
    ref = _train(tiny_model_dir, dataset_dir, tmp_path / "ref", "max_steps=2")
    assert ref.returncode == 0, ref.stderr[-3000:]
    checkpoint = _pages(tmp_path / "ref" / "checkpoint-2")
    log = -(-(tmp_path / "ref" / "train_log.jsonl").stat().st_size // PAGE) * PAGE + 2 * PAGE
    # Room for the log and one and a half checkpoints: checkpoint-2 fits, checkpoint-4 fails half-way
    # (the final adapter and tokenizer are written only after training).
    disk = tmp_path / "small-disk"
    _mount(disk, f"size={log + checkpoint + checkpoint // 2}")
    mounts.append(disk)
    out = disk / "run"
    proc = _train(tiny_model_dir, dataset_dir, out, "max_steps=8", "logging_steps=1")
    err = " ".join(proc.stderr.replace("│", " ").split())
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "No space left on device" in err or "is the disk full?" in err
    assert "The half-written checkpoint-4 was removed" in err
    assert f"The previous checkpoint {out / 'checkpoint-2'} is complete and usable" in err
    assert "resume_from_checkpoint=last" in err
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]

    # Usable: resuming from it on a disk with room finishes the run from step 2, not from 0.
    moved = tmp_path / "moved"
    subprocess.run(["cp", "-r", str(out), str(moved)], check=True)
    again = _train(tiny_model_dir, dataset_dir, moved, "max_steps=4", "logging_steps=1",
                   "resume_from_checkpoint=last")
    assert again.returncode == 0, again.stderr[-3000:]
    rows = [json.loads(line) for line in (moved / "train_log.jsonl").read_text().splitlines()]
    # The resumed run drops the rows logged after checkpoint-2 and logs steps 3-4 again; a restart
    # from step 0 would append steps 1-4 a second time.
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert json.loads((moved / "summary.json").read_text())["metrics"]["steps"] == 4


def _run_main(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    from tunesmith.utils.console import err_console

    monkeypatch.setattr(sys, "argv", ["tunesmith", *argv])
    monkeypatch.setattr(err_console, "width", 1000)
    monkeypatch.delenv("TUNESMITH_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        cli_main.main()
    return int(exc.value.code or 0), capsys.readouterr()


def test_read_only_output_dir_fails_before_training(tiny_model_dir: Path, dataset_dir: Path, tmp_path: Path,
                                                    mounts: list[Path], capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    disk = tmp_path / "ro"
    _mount(disk, "ro,size=1m")
    mounts.append(disk)
    code, captured = _run_main(["train", f"model_name_or_path={tiny_model_dir}", f"dataset_dir={dataset_dir}",
                                "dataset=toy_train", f"output_dir={disk / 'run'}"], capsys, monkeypatch)
    assert code == 2, captured.err
    assert f"'output_dir': '{disk / 'run'}' cannot be written (Read-only file system" in captured.err
    assert "training" not in captured.out.lower()  # refused before the model loaded
    assert not (disk / "run").exists()


def test_output_dir_below_a_file_fails_before_training(tiny_model_dir: Path, dataset_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("x")
    code, captured = _run_main(["train", f"model_name_or_path={tiny_model_dir}", f"dataset_dir={dataset_dir}",
                                "dataset=toy_train", f"output_dir={tmp_path / 'file' / 'run'}"], capsys, monkeypatch)
    assert code == 2, captured.err
    assert "is a file, not a folder" in captured.err
    assert "training" not in captured.out.lower()
