"""Merge export: the merged folder equals base + adapter, carries the template, stop ids and sampling
defaults, and the after-export checks catch a broken template or missing stop id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tunesmith.config import load_config
from tunesmith.export.run import ExportCheckError, check_existing, run_export

# The tolerance the export states for an fp32 merge (checks.merge_tolerance) is 1e-2; a correct merge
# is far inside it, so the test holds it to 1e-4. (bf16 exports allow 5% of the largest |logit|.)
MERGE_ATOL = 1e-4


def _cfg(model_dir: Path, adapter: Path | None, out: Path, **extra: object):  # noqa: ANN202
    return load_config(None, {
        "model_name_or_path": str(model_dir), "adapter_name_or_path": str(adapter) if adapter else None,
        "template": "gemma", "dataset": "unused", "bf16": False, "export_dir": str(out),
        "export_check_tokens": 8, "export_check_samples": 3, **extra,
    })


@pytest.fixture(scope="module")
def exported(tiny_model_dir: Path, tiny_adapters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    out = tmp_path_factory.mktemp("export") / "merged"
    cfg = _cfg(tiny_model_dir, tiny_adapters["alpha"], out, export_size=0.00003, temperature=0.7, top_p=0.9,
               top_k=40)
    return run_export(cfg)


def test_merged_logits_match_base_plus_adapter(exported, tiny_model_dir: Path,  # noqa: ANN001
                                               tiny_adapters: dict[str, Path]) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    ids = torch.tensor([[2, 4, 60, 61, 62, 63, 5, 10, 4, 70, 71]])
    with torch.no_grad():
        base_logits = base(ids).logits
        peft = PeftModel.from_pretrained(base, str(tiny_adapters["alpha"])).eval()
        want = peft(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(exported.export_dir).eval()
        got = merged(ids).logits
    assert (got - want).abs().max() < MERGE_ATOL
    assert (got - base_logits).abs().max() > 0.1, "the merge must keep the fine-tune, not the plain base"
    report = next(r for r in exported.reports if r.name == "merged")
    assert report.passed and report.greedy_exact == "3/3" and report.max_logit_diff < MERGE_ATOL


def test_merged_folder_is_complete_and_sharded(exported) -> None:  # noqa: ANN001
    out = exported.export_dir
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) > 1 and (out / "model.safetensors.index.json").exists(), "export_size shards the weights"
    assert not list(out.glob("*.bin")) and not list(out.glob("adapter_*")), "plain safetensors, no adapter"
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["temperature"] == 0.7 and gen["top_p"] == 0.9 and gen["top_k"] == 40 and gen["do_sample"] is True
    assert set(gen["eos_token_id"]) == {1, 5}, "<eos> and <end_of_turn> both stop generation"
    manifest = json.loads((out / "tunesmith_export.json").read_text())
    assert manifest["template"] == "gemma" and manifest["checks"][0]["passed"] is True
    assert not (out.parent / f".{out.name}.partial").exists()


def test_exported_template_renders_training_tokens(exported, tiny_tokenizer) -> None:  # noqa: ANN001
    from transformers import AutoTokenizer

    from tunesmith.data.records import Message
    from tunesmith.data.templates import get_template
    from tunesmith.data.tokenize import encode_prompt

    tok = AutoTokenizer.from_pretrained(exported.export_dir)
    chat = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "math?"}]
    got = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=False)
    want = encode_prompt([Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "math?")], "S",
                         get_template("gemma"), tiny_tokenizer)
    assert list(got) == want


def test_check_only_passes_then_catches_tampering(exported) -> None:  # noqa: ANN001
    cfg = load_config(None, {"export_dir": str(exported.export_dir), "dataset": "unused", "bf16": False,
                             "export_check_tokens": 8})
    again = check_existing(cfg)
    assert again.passed and [r.name for r in again.reports] == ["merged"]

    gen_path = exported.export_dir / "generation_config.json"
    original = gen_path.read_text()
    gen_path.write_text(json.dumps({**json.loads(original), "eos_token_id": 1}))  # only <eos>: LLaMA-Factory's bug
    try:
        with pytest.raises(ExportCheckError, match="end-of-turn id"):
            check_existing(cfg)
    finally:
        gen_path.write_text(original)

    tpl_path = exported.export_dir / "chat_template.jinja"
    original = tpl_path.read_text()
    tpl_path.write_text(original.replace("<start_of_turn>user\\n", "<start_of_turn>User\\n"))
    try:
        with pytest.raises(ExportCheckError, match="chat template differs .* at token 2") as info:
            check_existing(cfg)
        assert info.value.reports and not info.value.reports[0].template_ok
    finally:
        tpl_path.write_text(original)


def test_failed_export_is_not_left_as_the_export(tiny_model_dir: Path, tiny_adapters: dict[str, Path],
                                                 tmp_path: Path) -> None:
    # Demanding 100% token agreement from the int8 copy makes the check fail: on this tiny random model
    # int8 flips near-tied next tokens (2 of the 24 checked here, 91.7% agreement). Nothing lands at export_dir.
    out = tmp_path / "strict"
    cfg = _cfg(tiny_model_dir, tiny_adapters["beta"], out, export_quantization="int8", export_min_agreement=1.0)
    with pytest.raises(ExportCheckError, match=r"int8 \(int8\): token agreement .* is below 100%") as info:
        run_export(cfg)
    assert not out.exists() and not (tmp_path / ".strict.partial").exists()
    manifest = json.loads((tmp_path / "strict.failed" / "tunesmith_export.json").read_text())
    assert [c["passed"] for c in manifest["checks"]] == [True, False], "merged passed, int8 failed"
    assert "strict.failed" in str(info.value)


def test_int8_export_loads_back_quantized(tiny_model_dir: Path, tiny_adapters: dict[str, Path],
                                          tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    out = tmp_path / "q"
    result = run_export(_cfg(tiny_model_dir, tiny_adapters["alpha"], out, export_quantization="int8",
                             export_min_agreement=0.8))
    report = next(r for r in result.reports if r.name == "int8")
    assert report.passed and report.token_agreement >= 0.8 and report.template_ok and report.stop_ids_ok
    model = AutoModelForCausalLM.from_pretrained(out / "int8")
    weight = model.model.layers[0].mlp.down_proj.weight
    assert "Int8" in type(weight).__name__, type(weight)
    assert model.lm_head.weight.dtype == torch.float32, "the tied output layer stays full precision"
    assert (out / "int8" / "chat_template.jinja").exists() and (out / "int8" / "generation_config.json").exists()


def test_export_without_export_dir_is_a_config_error(tiny_model_dir: Path) -> None:
    from tunesmith.utils.errors import ConfigError

    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir), "dataset": "unused"})
    with pytest.raises(ConfigError, match="export_dir"):
        run_export(cfg)


def test_export_command_check_only(exported) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from tunesmith.cli.main import app

    result = CliRunner().invoke(app, ["export", "--check-only", "--export-dir", str(exported.export_dir),
                                      "bf16=false", "export_check_tokens=4"])
    assert result.exit_code == 0, result.output
    assert "Parity with base + adapter" in result.output and "pass" in result.output
    assert "Checked" in result.output
