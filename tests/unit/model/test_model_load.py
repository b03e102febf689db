"""Model resolution: bundled name, local folder, .gguf, hub id (offline: a clear error), bad paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.config.schema import FinetuneArgs
from tunesmith.model.adapters import apply_finetuning, count_parameters, linear_module_names
from tunesmith.model.load import load_model, load_tokenizer, resolve_model_path
from tunesmith.utils.errors import ConfigError, ModelLoadError


def test_local_folder_resolves_and_loads(tiny_model_dir: Path) -> None:
    path = resolve_model_path(str(tiny_model_dir))
    model = load_model(path)
    tok = load_tokenizer(path)
    assert model.config.model_type == "gemma3_text" and tok.pad_token is not None


def test_bad_paths_explain_themselves(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_model_path(str(tmp_path))
    with pytest.raises(ModelLoadError, match="not found"):
        resolve_model_path(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelLoadError, match="not the bundled model"):
        resolve_model_path("./does/not/exist")


def test_hub_id_offline_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = resolve_model_path("some-org/some-model")
    assert name == "some-org/some-model"
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE=1"):
        load_tokenizer(name)


def test_lora_targets_are_validated(tiny_model_dir: Path) -> None:
    model = load_model(str(tiny_model_dir))
    assert "q_proj" in linear_module_names(model) and "lm_head" not in linear_module_names(model)
    with pytest.raises(ConfigError, match="not found in this model"):
        apply_finetuning(model, FinetuneArgs(lora_target=["query_key_value"]))
    lora = apply_finetuning(model, FinetuneArgs(lora_rank=4))
    trainable, total = count_parameters(lora)
    assert 0 < trainable < total * 0.5
