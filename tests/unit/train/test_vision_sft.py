"""Vision-language sft through the one runner: LoRA on the language model with the vision tower frozen
(bit-identical after training), the vision tower and merger trained when unfrozen with their own
learning rates, full tuning; tiny random Qwen2-VL / Qwen2.5-VL models, images drawn with PIL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tiny_vlm import COLOURS, draw_image
from tunesmith.config.load import load_config
from tunesmith.train.sft import run_sft
from tunesmith.utils.errors import ConfigError, DataFormatError


def colour_data(root: Path) -> Path:
    """Qwen2-VL-Finetune-shaped data: one picture per record, the answer is its colour."""
    rows = []
    for colour in COLOURS:
        draw_image(root / "pics" / f"{colour}.png", colour)
        rows.append({"id": colour, "image": f"{colour}.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is this?"}, {"from": "gpt", "value": colour}]})
    (root / "train.json").write_text(json.dumps(rows * 2))
    return root


def _cfg(model: Path, data: Path, out: Path, **extra: object) -> object:
    return load_config(None, {
        "model_name_or_path": str(model), "dataset": str(data / "train.json"), "dataset_dir": str(data),
        "image_folder": str(data / "pics"), "output_dir": str(out), "cutoff_len": 128,
        "per_device_train_batch_size": 4, "max_steps": 10, "learning_rate": 0.1, "warmup_ratio": 0.0,
        "lr_scheduler_type": "constant", "logging_steps": 1, "save_steps": 100, "report_summary": False,
        "bf16": False, "report_to": "none", "plot_loss": False, **extra})


def _weights(folder: Path, adapter: Path | None = None) -> dict[str, torch.Tensor]:
    """The model's weights by their in-memory names (a saved checkpoint names them differently), with
    ``adapter`` merged in when given."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(folder)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_lora_on_the_language_model_leaves_the_frozen_vision_tower_bit_identical(
        tiny_vlm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = colour_data(tmp_path / "data")
    res = run_sft(_cfg(tiny_vlm_dir, data, tmp_path / "run"))
    printed = capsys.readouterr().out
    assert "vision-language model" in printed and "fast loss" in printed  # why the fast loss is off
    assert res.metrics["final_loss"] < res.metrics["first_loss"] - 0.5, res.metrics
    out = Path(res.output_dir)
    assert (out / "preprocessor_config.json").exists() and (out / "adapter_config.json").exists()

    lora = load_file(str(out / "adapter_model.safetensors"))
    assert lora and all("language_model" in k for k in lora), sorted(lora)[:5]  # no LoRA on the vision side
    assert any(float(v.abs().sum()) > 0 for k, v in lora.items() if "lora_B" in k)  # B starts at zero: it moved

    base, merged = _weights(tiny_vlm_dir), _weights(tiny_vlm_dir, out)
    vision = [k for k in base if k.startswith("model.visual.")]
    assert vision
    for k in vision:  # frozen: exactly the weights it started with
        assert torch.equal(merged[k], base[k]), k
    assert any(not torch.equal(merged[k], base[k]) for k in base if "language_model.layers" in k)


def test_unfrozen_vision_tower_and_merger_train_with_their_own_learning_rates(
        tiny_vlm25_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = colour_data(tmp_path / "data")
    res = run_sft(_cfg(tiny_vlm25_dir, data, tmp_path / "run", freeze_vision_tower=False,
                       freeze_multi_modal_projector=False, vision_lr=0.02, merger_lr=0.05, max_steps=6))
    printed = capsys.readouterr().out
    assert "optimizer group vision" in printed and "lr 0.02" in printed and "lr 0.05" in printed
    lora = load_file(str(Path(res.output_dir) / "adapter_model.safetensors"))
    vision_b = [v for k, v in lora.items() if "visual.blocks" in k and "lora_B" in k]
    assert vision_b and any(float(v.abs().sum()) > 0 for v in vision_b)  # LoRA on the vision tower moved
    assert any("merger" in k for k in lora)  # the merger is saved whole (modules_to_save) ...
    base, merged = _weights(tiny_vlm25_dir), _weights(tiny_vlm25_dir, Path(res.output_dir))
    merger = [k for k in base if ".merger." in k]
    assert merger and all(not torch.equal(merged[k], base[k]) for k in merger if k.endswith("weight"))  # ... moved
    blocks = [k for k in base if "visual.blocks" in k and k.endswith("qkv.weight")]
    assert blocks and all(not torch.equal(merged[k], base[k]) for k in blocks)  # and the tower changed


def test_full_tuning_keeps_the_frozen_vision_tower(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    data = colour_data(tmp_path / "data")
    res = run_sft(_cfg(tiny_vlm_dir, data, tmp_path / "run", finetuning_type="full", learning_rate=1e-3,
                       max_steps=3))
    base, after = _weights(tiny_vlm_dir), _weights(Path(res.output_dir))
    assert set(base) == set(after)
    assert all(torch.equal(after[k], base[k]) for k in base if "visual" in k)
    assert any(not torch.equal(after[k], base[k]) for k in base if "language_model.layers" in k)


def test_vision_lr_without_a_trained_vision_tower_is_refused(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    data = colour_data(tmp_path / "data")
    with pytest.raises(ConfigError, match="'vision_lr' is set but no vision encoder weight trains"):
        run_sft(_cfg(tiny_vlm_dir, data, tmp_path / "run", vision_lr=0.01, max_steps=1))


def test_too_short_cutoff_len_is_refused_before_the_model_loads(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    data = colour_data(tmp_path / "data")
    with pytest.raises(DataFormatError, match=r"train\.json:1: needs \d+ tokens \(4 of them vision tokens"):
        run_sft(_cfg(tiny_vlm_dir, data, tmp_path / "run", cutoff_len=16))
    assert not (tmp_path / "run").exists()


def test_images_given_to_a_text_only_model_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = colour_data(tmp_path / "data")
    with pytest.raises(DataFormatError, match="carry images / video .* is a text-only model"):
        run_sft(_cfg(tiny_model_dir, data, tmp_path / "run"))


def test_lora_target_names_are_checked_against_a_vision_model(tiny_vlm_dir: Path) -> None:
    """The before-any-stage check of lora_target builds the model on the meta device from its config."""
    from tunesmith.model.adapters import linear_module_names_of

    names = linear_module_names_of(str(tiny_vlm_dir))
    assert {"q_proj", "v_proj", "qkv", "fc1"} <= set(names)


def test_unfrozen_vision_tower_with_lora_target_missing_its_layers_is_refused(tiny_vlm_dir: Path,
                                                                              tmp_path: Path) -> None:
    data = colour_data(tmp_path / "data")
    with pytest.raises(ConfigError, match=r"names none of the vision encoder's linear layers \(fc1, fc2, proj, qkv\)"):
        run_sft(_cfg(tiny_vlm_dir, data, tmp_path / "run", freeze_vision_tower=False, lora_target="q_proj,v_proj"))


def test_qwen3_vl_trains_its_list_of_mergers(tmp_path: Path) -> None:
    """Qwen3-VL (patch 16, deepstack mergers in a ModuleList): the same path; each merger is trained whole."""
    from tiny_vlm import build_tiny_vlm

    model = build_tiny_vlm(tmp_path / "qwen3-vl", "qwen3_vl")
    data = colour_data(tmp_path / "data")
    res = run_sft(_cfg(model, data, tmp_path / "run", freeze_multi_modal_projector=False, max_steps=2))
    saved = load_file(str(Path(res.output_dir) / "adapter_model.safetensors"))
    assert any("deepstack_merger_list.0" in k for k in saved) and any(".merger." in k for k in saved)
