"""The config form: one field per schema key, lossless round trips, YAML that trains the same config."""

from __future__ import annotations

from pathlib import Path

import yaml

from tunesmith.config import field_help, field_index
from tunesmith.config.load import build_config, load_config
from tunesmith.webui import form

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart.yaml"


def test_every_config_key_is_a_field_with_help_in_both_languages() -> None:
    assert [f.key for f in form.FIELDS] == list(field_index())
    for f in form.FIELDS:
        assert field_help(f.key, "en") and field_help(f.key, "zh"), f.key
    kinds = {f.key: f.kind for f in form.FIELDS}
    assert kinds["stage"] == "choice" and "dpo" in form.FIELD_BY_KEY["stage"].choices
    assert kinds["bf16"] == "tristate" and kinds["dataset"] == "list" and kinds["lora_rank"] == "int"
    assert kinds["learning_rate"] == "float" and kinds["adapter_name_or_path"] == "optional_text"
    assert form.FIELD_BY_KEY["lora_alpha"].optional and not form.FIELD_BY_KEY["lora_rank"].optional


def test_form_round_trip_and_yaml_train_the_same_config() -> None:
    flat, stages, problems = form.read_config_file(QUICKSTART)
    assert problems == [] and stages == []
    assert flat == load_config(QUICKSTART).flat() | {"dataset_dir": flat["dataset_dir"]}
    assert Path(flat["dataset_dir"]).is_absolute() and (Path(flat["dataset_dir"]) / "dataset_info.json").exists()
    assert form.flat_from_form(form.form_values(flat)) == flat
    text = form.to_yaml(flat)
    assert build_config(yaml.safe_load(text)).flat() == flat
    assert "learning_rate: 0.0002" in text and "dataset: [subjects_train]" in text
    assert "seed:" not in text, "keys at their defaults are left out"
    assert "model_name_or_path: gemma-3-270m" in text, "essential keys are always written"


def test_form_values_become_config_values() -> None:
    spec = form.FIELD_BY_KEY
    assert form.from_form(spec["lora_alpha"], "") is None
    assert form.from_form(spec["lora_alpha"], " 32 ") == 32
    assert form.from_form(spec["cutoff_len"], 512.0) == 512
    assert form.from_form(spec["cutoff_len"], None) == 1024, "an emptied required number keeps its default"
    assert form.from_form(spec["bf16"], "auto") is None and form.from_form(spec["bf16"], "false") is False
    assert form.from_form(spec["lora_target"], "q_proj, v_proj,") == ["q_proj", "v_proj"]
    assert form.from_form(spec["dataset"], ["a", " b "]) == ["a", "b"]
    assert form.from_form(spec["adapter_name_or_path"], "  ") is None
    flat = {**form.defaults(), "dataset": ["x"], "cutoff_len": form.from_form(spec["cutoff_len"], "abc")}
    problems = form.config_problems(flat)
    assert any("cutoff_len" in p and "abc" in p for p in problems), problems


def test_loading_a_yaml_with_mistakes_fills_what_is_valid(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("learnin_rate: 1e-3\nlora_rank: -4\nlora_dropout: 0.1\ndataset_dir: data\ndataset: a,b\n")
    (tmp_path / "data").mkdir()
    flat, _, problems = form.read_config_file(cfg)
    assert any("learnin_rate" in p and "did you mean 'learning_rate'" in p for p in problems), problems
    assert any("lora_rank" in p for p in problems), problems
    assert flat["lora_rank"] == 8, "an invalid value keeps the default"
    assert flat["lora_dropout"] == 0.1 and flat["dataset"] == ["a", "b"]
    assert flat["dataset_dir"] == str((tmp_path / "data").resolve())
