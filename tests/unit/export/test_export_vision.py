"""Exporting a vision-language adapter: merged weights + processor files, and a parity check with an image
prompt that sends pixels through the vision tower and merger (tiny random Qwen2-VL)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunesmith.config import load_config
from tunesmith.export.run import run_export


def _vision_adapter(model_dir: Path, out: Path) -> Path:
    """Random non-zero LoRA on language + vision layers, and a perturbed merger trained whole."""
    from peft import get_peft_model
    from transformers import AutoModelForImageTextToText

    from tunesmith.config.schema import FinetuneArgs
    from tunesmith.model.vision import vision_lora_config

    torch.manual_seed(3)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    config = vision_lora_config(model, FinetuneArgs(freeze_vision_tower=False, freeze_multi_modal_projector=False,
                                                    lora_rank=4))
    config.init_lora_weights = False
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name or "modules_to_save" in name:
                param.add_(torch.randn_like(param) * 0.3)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def vlm_export(tiny_vlm_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("vlm-export")
    adapter = _vision_adapter(tiny_vlm_dir, root / "adapter")
    cfg = load_config(None, {"model_name_or_path": str(tiny_vlm_dir), "adapter_name_or_path": str(adapter),
                             "dataset": "unused", "bf16": False, "export_dir": str(root / "merged"),
                             "export_check_tokens": 6, "export_check_samples": 2})
    return run_export(cfg), adapter


def test_merged_vlm_passes_the_image_prompt_check(vlm_export, tiny_vlm_dir: Path) -> None:  # noqa: ANN001
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    result, _ = vlm_export
    image_report = next(r for r in result.reports if r.name == "merged (image prompt)")
    assert image_report.passed and image_report.greedy_exact == "1/1", image_report
    assert image_report.max_logit_diff < 1e-2
    out = result.export_dir
    assert (out / "preprocessor_config.json").exists()
    assert (out / "chat_template.jinja").read_text() == (tiny_vlm_dir / "chat_template.jinja").read_text()
    assert AutoTokenizer.from_pretrained(out).chat_template == (tiny_vlm_dir / "chat_template.jinja").read_text()
    assert type(AutoModelForImageTextToText.from_pretrained(out)).__name__ == "Qwen2VLForConditionalGeneration"


def test_the_image_check_fails_when_the_vision_side_differs(vlm_export, tiny_vlm_dir: Path) -> None:  # noqa: ANN001
    """The same check against the base model without the adapter (whose vision layers and merger differ)."""
    from types import SimpleNamespace

    from tunesmith.data.templates import get_template
    from tunesmith.export.vision import check_image_prompt, image_reference
    from tunesmith.model.load import end_token_ids, load_model
    from tunesmith.model.vision import load_processor

    result, _ = vlm_export
    proc = load_processor(str(tiny_vlm_dir))
    template = get_template("auto", "qwen2_vl", proc.tokenizer)
    stop = end_token_ids(proc.tokenizer, template.stop_words)
    base = SimpleNamespace(model=load_model(str(tiny_vlm_dir)).eval(), template=template, stop_ids=stop)
    ref = image_reference(base, proc, max_new_tokens=6)
    report = check_image_prompt(result.export_dir, ref, stop, tolerance=1e-2)
    assert not report.passed and any("image prompt" in p for p in report.problems)
