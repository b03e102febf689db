"""The run record (tunesmith_run.yaml) is written last: a run stopped while saving its final files has
none, and loading it is an error naming the folder instead of a silent pairing with the default model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.config import load_config
from tunesmith.inference.load import load_inference_model
from tunesmith.train import runner
from tunesmith.train.resolve import RUN_CONFIG
from tunesmith.train.sft import run_sft
from tunesmith.utils.errors import ModelLoadError


def test_a_run_stopped_while_saving_has_no_record_and_is_refused(tiny_train_overrides: dict,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(None, {**tiny_train_overrides, "num_train_epochs": 1})
    real_write_json = runner.write_json

    def stopped(path: Path, *args: object, **kwargs: object) -> object:
        if Path(path).name == runner.SUMMARY:
            raise KeyboardInterrupt  # the user stops the run while it writes its final files
        return real_write_json(path, *args, **kwargs)

    monkeypatch.setattr(runner, "write_json", stopped)
    with pytest.raises(KeyboardInterrupt):
        run_sft(cfg)
    out = Path(cfg.train.output_dir)
    assert (out / "adapter_model.safetensors").exists() and not (out / RUN_CONFIG).exists()
    chat = load_config(None, {"adapter_name_or_path": str(out), "bf16": False}, require_data=False)
    with pytest.raises(ModelLoadError, match=rf"{out.name}.* no {RUN_CONFIG}"):
        load_inference_model(chat)
    # naming the base explicitly loads it anyway
    named = load_config(None, {"adapter_name_or_path": str(out), "bf16": False,
                               "model_name_or_path": tiny_train_overrides["model_name_or_path"]}, require_data=False)
    assert load_inference_model(named).adapter_path == str(out)

    # a finished run (here: the same config, finishing) has the record, written after everything else
    monkeypatch.setattr(runner, "write_json", real_write_json)
    done = run_sft(load_config(None, {**tiny_train_overrides, "num_train_epochs": 1, "overwrite_output_dir": True}))
    record = done.output_dir / RUN_CONFIG
    assert record.exists()
    assert all(p.stat().st_mtime_ns <= record.stat().st_mtime_ns for p in done.output_dir.iterdir() if p.is_file())
    assert load_inference_model(chat).base_path == tiny_train_overrides["model_name_or_path"]


def test_overwriting_a_run_removes_its_record_until_the_new_run_finishes(tiny_train_overrides: dict,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    first = run_sft(load_config(None, {**tiny_train_overrides, "num_train_epochs": 1}))
    assert (first.output_dir / RUN_CONFIG).exists()

    def interrupted(*_a: object, **_k: object) -> None:
        assert not (first.output_dir / RUN_CONFIG).exists(), "the folder must not claim to hold a finished run"
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.TunesmithTrainer, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sft(load_config(None, {**tiny_train_overrides, "num_train_epochs": 1, "overwrite_output_dir": True}))
    assert not (first.output_dir / RUN_CONFIG).exists()
