"""Where an export may go: every folder holding user work is refused before any work, and replacing an
earlier export needs overwrite_export_dir and keeps the old one until the new one is in place."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tunesmith.config import load_config
from tunesmith.export import run as export_run
from tunesmith.export.run import run_export
from tunesmith.export.target import check_export_dir
from tunesmith.utils.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _finished_run(adapter: Path, where: Path, base: str = "gemma-3-270m") -> Path:
    """A copy of a finished run as the issue describes: adapter, two checkpoints, logs and a user's file."""
    shutil.copytree(adapter, where)
    for step in (50, 84):
        shutil.copytree(adapter, where / f"checkpoint-{step}")
        (where / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (where / "train_log.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    (where / "loss.png").write_bytes(b"\x89PNG not really")
    (where / "my_notes.txt").write_text("the user's own notes\n")
    (where / "tunesmith_run.yaml").write_text(yaml.safe_dump({"model_name_or_path": base, "template": "gemma"}))
    return where


def _cfg(model_dir: Path, adapter: Path | None, out: Path, **extra: object):  # noqa: ANN202
    return load_config(None, {
        "model_name_or_path": str(model_dir), "adapter_name_or_path": str(adapter) if adapter else None,
        "template": "gemma", "bf16": False, "export_dir": str(out), "export_check_tokens": 4,
        "export_check_samples": 1, **extra}, require_data=False)


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model is work: a refused export_dir must be refused before it."""
    def loaded(*_a: object, **_k: object) -> None:
        raise AssertionError("the export started working before refusing export_dir")
    monkeypatch.setattr(export_run, "load_inference_model", loaded)


def test_issue_reproduction_refuses_and_deletes_nothing(tiny_adapters: dict[str, Path], tmp_path: Path) -> None:
    run = _finished_run(tiny_adapters["alpha"], tmp_path / "R")
    before = _snapshot(run)
    # the command exactly as the issue ran it, as a user would (the real CLI, its exit code and output)
    done = subprocess.run([sys.executable, "-m", "tunesmith.cli.main", "export",
                           str(REPO / "examples" / "quickstart.yaml"), "adapter_name_or_path=R", "export_dir=R"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "is or contains the adapter" in output and "Exported" not in output, output
    assert _snapshot(run) == before, "nothing in the run folder may change"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["R"], "no partial or failed folder either"


@pytest.mark.parametrize("case", ["adapter", "adapter_parent", "base", "base_parent", "cwd", "cwd_parent",
                                  "other_run", "run_inside", "user_folder", "file"])
def test_refused_export_dirs(case: str, tiny_model_dir: Path, tiny_adapters: dict[str, Path], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch, no_work: None) -> None:
    base = tmp_path / "models" / "base"
    shutil.copytree(tiny_model_dir, base)
    run = _finished_run(tiny_adapters["alpha"], tmp_path / "saves" / "R", base=str(base))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    other = _finished_run(tiny_adapters["beta"], tmp_path / "other" / "R2", base=str(base))
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("years of work")
    (tmp_path / "a_file").write_text("x")
    target, why = {
        "adapter": (run, "is or contains the adapter"),
        "adapter_parent": (tmp_path / "saves", "is or contains the adapter"),
        "base": (base, "is or contains the base model"),
        "base_parent": (tmp_path / "models", "is or contains the base model"),
        "cwd": (work, "is or contains the current directory"),
        "cwd_parent": (tmp_path, "is or contains the current directory"),
        "other_run": (other, "holds a training run"),
        "run_inside": (tmp_path / "other", "holds a training run"),
        "user_folder": (user, "is not an earlier tunesmith export"),
        "file": (tmp_path / "a_file", "is a file"),
    }[case]
    before = _snapshot(tmp_path)
    cfg = _cfg(base, run, target, overwrite_export_dir=True)  # not even overwrite allows these
    with pytest.raises(ConfigError, match=why):
        run_export(cfg)
    assert _snapshot(tmp_path) == before
    assert not list(tmp_path.rglob(".*partial*"))


def test_relative_export_dir_is_checked_from_the_cwd(tiny_model_dir: Path, tiny_adapters: dict[str, Path],
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     no_work: None) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="current directory"):
        check_export_dir(_cfg(tiny_model_dir, tiny_adapters["alpha"], Path(".")))


def test_adapter_without_run_record_is_an_error_naming_it(tiny_adapters: dict[str, Path], tmp_path: Path) -> None:
    from tunesmith.utils.errors import ModelLoadError

    half = tmp_path / "half"
    shutil.copytree(tiny_adapters["alpha"], half)
    cfg = load_config(None, {"adapter_name_or_path": str(half), "export_dir": str(tmp_path / "e")},
                      require_data=False)
    with pytest.raises(ModelLoadError, match=r"half.* no tunesmith_run.yaml") as info:
        check_export_dir(cfg)
    assert "model_name_or_path=" in str(info.value)


@pytest.fixture(scope="module")
def earlier(tiny_model_dir: Path, tiny_adapters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replace") / "export"
    run_export(_cfg(tiny_model_dir, tiny_adapters["alpha"], out))
    return out


def test_new_and_empty_folders_are_accepted(tiny_model_dir: Path, tiny_adapters: dict[str, Path],
                                            tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "new" / "deeper", tmp_path / "empty"):
        assert check_export_dir(_cfg(tiny_model_dir, tiny_adapters["alpha"], out)).out == out


def test_earlier_export_needs_overwrite(earlier: Path, tiny_model_dir: Path, tiny_adapters: dict[str, Path],
                                        no_work: None) -> None:
    before = _snapshot(earlier)
    with pytest.raises(ConfigError, match="holds an earlier export; set overwrite_export_dir=true"):
        run_export(_cfg(tiny_model_dir, tiny_adapters["beta"], earlier))
    assert _snapshot(earlier) == before


def test_replace_keeps_the_old_export_until_the_new_one_is_complete(
        earlier: Path, tiny_model_dir: Path, tiny_adapters: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    before = _snapshot(earlier)
    real_checks = export_run.run_checks

    def interrupted(root: Path, *args: object, **kwargs: object) -> object:
        assert _snapshot(earlier) == before, "the old export is untouched while the new one is written"
        raise KeyboardInterrupt  # stopped half-way through the new export

    monkeypatch.setattr(export_run, "run_checks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_export(_cfg(tiny_model_dir, tiny_adapters["beta"], earlier, overwrite_export_dir=True))
    assert _snapshot(earlier) == before
    assert [p.name for p in earlier.parent.iterdir()] == ["export"], "the half-written export is removed"

    monkeypatch.setattr(export_run, "run_checks", real_checks)
    result = run_export(_cfg(tiny_model_dir, tiny_adapters["beta"], earlier, overwrite_export_dir=True))
    assert result.passed and result.export_dir == earlier
    manifest = json.loads((earlier / "tunesmith_export.json").read_text())
    assert manifest["adapter_name_or_path"] == str(tiny_adapters["beta"])
    assert _snapshot(earlier) != before
    assert [p.name for p in earlier.parent.iterdir()] == ["export"], "the old export is gone only at the end"


def test_failed_copy_never_replaces_user_files(tiny_model_dir: Path, tiny_adapters: dict[str, Path],
                                               tmp_path: Path, no_work: None) -> None:
    failed = tmp_path / "out.failed"
    failed.mkdir()
    (failed / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"failed copy.*not an earlier tunesmith export"):
        run_export(_cfg(tiny_model_dir, tiny_adapters["alpha"], tmp_path / "out"))
    assert (failed / "keep.txt").read_text() == "mine"


def test_parity_checks_say_when_the_test_set_moved(tiny_model_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tunesmith.export.checks import DEFAULT_PROMPTS
    from tunesmith.export.run import check_prompts
    from tunesmith.utils import console as console_mod

    monkeypatch.setattr(console_mod, "_told", set())
    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir), "test_dataset": "moved_test",
                             "dataset_dir": str(tmp_path), "export_check_samples": 2}, require_data=False)
    assert check_prompts(cfg) == DEFAULT_PROMPTS[:2]
    out = " ".join(capsys.readouterr().out.split())
    assert "cannot read test_dataset 'moved_test'" in out and "built-in prompts instead" in out, out
