"""Config loading: defaults < YAML < key=value, all errors together, suggestions, every shipped YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.config import field_help, field_index, load_config
from tunesmith.config.load import dump_config, parse_value, stage_configs
from tunesmith.utils.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def test_precedence_defaults_yaml_overrides(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("dataset: a\nlearning_rate: 3.0e-4\nlora_rank: 16\n")
    cfg = load_config(cfg_file, ["lora_rank=32", "lora_target=q_proj,v_proj"])
    assert cfg.train.learning_rate == 3e-4  # from YAML
    assert cfg.finetune.lora_rank == 32  # override wins
    assert cfg.finetune.lora_target == ["q_proj", "v_proj"]
    assert cfg.train.num_train_epochs == 3.0  # default
    assert cfg.lora_alpha == 64  # 2 x rank when unset


def test_all_errors_reported_together_with_suggestions() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["dataset=a", "learnin_rate=1e-4", "lora_rank=0", "stage=sfx", "num_train_epochs=abc"])
    text = str(info.value)
    assert "did you mean 'learning_rate'" in text
    assert "'lora_rank'" in text and "'stage'" in text and "'num_train_epochs'" in text
    assert len(info.value.problems) == 4


def test_missing_dataset_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no dataset given"):
        load_config(None, [])
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: a\nlearning_rate: [1\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_override_syntax_error() -> None:
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["dataset"])


def test_values_parse_like_yaml() -> None:
    assert parse_value("1e-4") == 1e-4 and parse_value("true") is True and parse_value("null") is None
    assert parse_value("q_proj,v_proj") == "q_proj,v_proj"


def test_keys_unique_and_documented_in_both_languages() -> None:
    index = field_index()
    assert "learning_rate" in index and "lora_rank" in index and "cutoff_len" in index
    for key in index:
        assert field_help(key, "en"), key
        assert field_help(key, "zh") != field_help(key, "en"), key


def test_llamafactory_keys_present() -> None:
    wanted = ("model_name_or_path adapter_name_or_path template stage finetuning_type lora_rank lora_alpha "
              "lora_dropout lora_target use_rslora use_dora dataset dataset_dir cutoff_len max_samples val_size "
              "learning_rate num_train_epochs max_steps per_device_train_batch_size gradient_accumulation_steps "
              "lr_scheduler_type warmup_ratio weight_decay max_grad_norm logging_steps eval_steps save_steps bf16 "
              "seed output_dir resume_from_checkpoint plot_loss").split()
    missing = [k for k in wanted if k not in field_index()]
    assert not missing


def test_multi_stage_expansion_and_errors() -> None:
    cfg = load_config(None, {"dataset": "a", "learning_rate": 1e-5,
                             "stages": [{"dataset": "a"}, {"dataset": "b", "learning_rate": 5e-6}]})
    stages = stage_configs(cfg)
    assert [s.data.dataset for s in stages] == [["a"], ["b"]]
    assert stages[1].train.learning_rate == 5e-6
    with pytest.raises(ConfigError, match=r"stages\[1\].'lerning_rate'"):
        load_config(None, {"dataset": "a", "stages": [{}, {"lerning_rate": 1}]})


def test_dump_round_trip(tmp_path: Path) -> None:
    cfg = load_config(None, ["dataset=a", "lora_rank=4"])
    path = tmp_path / "x.yaml"
    path.write_text(dump_config(cfg))
    again = load_config(path)
    assert again.flat() == cfg.flat()


def test_ignored_llamafactory_keys_are_accepted() -> None:
    cfg = load_config(None, {"dataset": "a", "do_train": True, "overwrite_cache": True})
    assert cfg.data.dataset == ["a"]


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_yaml_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.source == str(path)


def test_commands_that_read_no_data_need_no_dataset() -> None:
    # chat, export, serve and benchmark scoring use a model only; every other rule still applies.
    cfg = load_config(None, {"stage": "sft", "temperature": 0.5}, require_data=False)
    assert cfg.data.dataset == [] and cfg.finetune.stage == "sft"
    with pytest.raises(ConfigError, match="no dataset given"):
        load_config(None, {"stage": "sft"})
    with pytest.raises(ConfigError, match="learning_rat"):
        load_config(None, {"learning_rat": 1e-4}, require_data=False)
