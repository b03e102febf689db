"""GGUF export: f16 and q8_0 files load back with transformers' GGUF loader and answer like the merged
model; chat runs on the exported file; unsupported models are refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import build_tokenizer, make_lora_adapter
from tunesmith.config import load_config
from tunesmith.export.gguf import gguf_problems, gguf_tokenizer_extras, write_gguf
from tunesmith.export.run import run_export
from tunesmith.utils.errors import ModelLoadError


@pytest.fixture(scope="module")
def gguf_exports(tiny_gguf_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("gguf-export")
    adapter = make_lora_adapter(tiny_gguf_model_dir, root / "adapter", seed=3, scale=0.2)
    results = {}
    for q in ("gguf-f16", "gguf-q8_0"):
        cfg = load_config(None, {
            "model_name_or_path": str(tiny_gguf_model_dir), "adapter_name_or_path": str(adapter),
            "template": "gemma", "dataset": "unused", "bf16": False, "export_dir": str(root / q),
            "export_quantization": q, "export_check_tokens": 10, "export_check_samples": 3,
        })
        results[q] = run_export(cfg)
    return results


def test_gguf_files_pass_the_parity_checks(gguf_exports: dict) -> None:
    f16 = next(r for r in gguf_exports["gguf-f16"].reports if r.name == "gguf-f16")
    q8 = next(r for r in gguf_exports["gguf-q8_0"].reports if r.name == "gguf-q8_0")
    # f16 rounding of a tiny model keeps every greedy token; q8_0 must keep >= 90% of next tokens
    assert f16.passed and f16.greedy_exact == "3/3" and f16.max_logit_diff < 0.05
    assert q8.passed and q8.token_agreement >= 0.9
    assert f16.template_ok and q8.template_ok and f16.stop_ids_ok and q8.stop_ids_ok


def test_gguf_loads_back_with_transformers(gguf_exports: dict) -> None:
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = gguf_exports["gguf-q8_0"]
    path = result.export_dir / result.artifacts["gguf-q8_0"]
    reader = GGUFReader(path)
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.ffn_up.weight"] == "Q8_0" and types["blk.0.attn_norm.weight"] == "F32"
    template, special, stop_ids = gguf_tokenizer_extras(path)
    assert stop_ids == [1, 5], "EOS and <end_of_turn> (eot) are both in the file"
    assert special["bos_token"] == 2 and "<start_of_turn>" in (template or "")
    assert "<start_of_turn>" in reader.fields["tokenizer.chat_template"].contents()

    merged = AutoModelForCausalLM.from_pretrained(result.export_dir).eval()
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    text = "Which school subject? 数学 <start_of_turn>user\nhello"
    want_ids = AutoTokenizer.from_pretrained(result.export_dir).encode(text, add_special_tokens=False)
    got_ids = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name).encode(text, add_special_tokens=False)
    assert got_ids == want_ids
    ids = torch.tensor([want_ids])
    with torch.no_grad():
        a, b = merged(ids).logits, loaded(ids).logits
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() >= 0.8  # a random model has many near-ties
    assert (a - b).abs().max() < 0.5, "q8_0 rounding moves logits a little, not a lot"


def test_chat_runs_on_the_exported_gguf(gguf_exports: dict, tmp_path: Path) -> None:
    """`tunesmith chat --model file.gguf` converts the file once and answers like the merged model."""
    from tunesmith.inference.load import load_inference_model
    from tunesmith.model.generate import GenerationSettings
    from tunesmith.serve.chat import ChatSession

    result = gguf_exports["gguf-f16"]
    path = result.export_dir / result.artifacts["gguf-f16"]
    settings = GenerationSettings(max_new_tokens=10)
    answers = []
    for model in (str(path), str(result.export_dir)):
        cfg = load_config(None, {"model_name_or_path": model, "template": "gemma", "dataset": "unused",
                                 "bf16": False, "cache_dir": str(tmp_path / "cache")})
        session = ChatSession(load_inference_model(cfg), settings)
        answers.append("".join(session.send("Which school subject is 2 + 3?")))
    assert answers[0] == answers[1] and answers[0]


def test_unsupported_models_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert any("layer_types" in p for p in gguf_problems(config))
    with pytest.raises(ModelLoadError, match="layer_types"):
        write_gguf(tiny_model_dir, tmp_path / "x.gguf", "f16", stop_ids=[5, 1])
    assert not (tmp_path / "x.gguf").exists()
    assert gguf_problems({"model_type": "gpt2"})[0].startswith("model_type 'gpt2' is not supported")


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_llama_and_qwen2_round_trip(arch: str, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    build_tokenizer(tmp_path)
    vocab = len(json.loads((tmp_path / "tokenizer.json").read_text())["model"]["vocab"])
    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cls(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False, bos_token_id=2,
        eos_token_id=1, pad_token_id=0))
    model.save_pretrained(tmp_path)
    path = write_gguf(tmp_path, tmp_path / "m.gguf", "f16", stop_ids=[1])
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf", dtype=torch.float32).eval()
    ids = torch.tensor([[2, 40, 41, 42, 43, 44, 45]])
    with torch.no_grad():
        diff = (model(ids).logits - loaded(ids).logits).abs().max()
    assert diff < 1e-2, f"{arch}: {diff}"
    assert path.stat().st_size > 0
