"""Writing a recommended config: values changed in place, comments kept, the result loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tunesmith.advise.configfile import patch_yaml_text, write_recommended, yaml_scalar
from tunesmith.config import load_config
from tunesmith.utils.errors import ConfigError

TEXT = """# my run
dataset: toy_train   # the data
dataset_dir: data
learning_rate: 2.0e-4
num_train_epochs: 3
"""


def test_scalars_read_back_as_the_same_values() -> None:
    for value in (1e-5, 0.15, 8, True, "lora", ["q_proj", "v_proj"]):
        assert yaml.safe_load(f"k: {yaml_scalar(value)}")["k"] == value


def test_patch_keeps_comments_and_appends_new_keys() -> None:
    out = patch_yaml_text(TEXT, {"num_train_epochs": 8, "learning_rate": 2e-4, "val_size": 0.15})
    assert "# my run" in out and "dataset: toy_train   # the data" in out
    assert "num_train_epochs: 8  # tunesmith advise: was 3" in out
    assert "learning_rate: 2.0e-4\n" in out, "an unchanged value is left alone"
    assert yaml.safe_load(out) == {"dataset": "toy_train", "dataset_dir": "data", "learning_rate": 2e-4,
                                   "num_train_epochs": 8, "val_size": 0.15}


def test_grouped_configs_are_rewritten_whole() -> None:
    out = patch_yaml_text("data:\n  dataset: d\ntrain:\n  num_train_epochs: 3\n", {"num_train_epochs": 5})
    assert yaml.safe_load(out) == {"dataset": "d", "num_train_epochs": 5}


def test_written_config_loads_and_keeps_its_data_folder(tmp_path: Path, dataset_dir: Path) -> None:
    src = dataset_dir.parent / "run.yaml"
    src.write_text(TEXT.replace("dataset_dir: data", f"dataset_dir: {dataset_dir.name}"))
    out = tmp_path / "elsewhere" / "advised.yaml"
    write_recommended(src, {"num_train_epochs": 6}, out)
    cfg = load_config(out)
    assert cfg.train.num_train_epochs == 6
    assert Path(cfg.data.dataset_dir).resolve() == dataset_dir.resolve()


def test_an_invalid_result_is_not_written(tmp_path: Path) -> None:
    src = tmp_path / "run.yaml"
    src.write_text(TEXT)
    with pytest.raises(ConfigError):
        write_recommended(src, {"num_train_epochs": -1}, tmp_path / "bad.yaml")
    assert not (tmp_path / "bad.yaml").exists()
