"""QLoRA and the LoRA variants on the tiny model, each checked for a real effect, not only that it runs:
4/8-bit bases stay frozen while LoRA learns, and a QLoRA adapter merges into the unquantized base;
PiSSA / OLoRA adapters are converted so the original base plus the saved adapter is the trained model;
LoftQ starts from non-zero LoRA; LoRA+ moves B faster; NEFTune changes the training loss only; new
special tokens resize the embeddings and train; rope_scaling stretches the positions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tunesmith.config import load_config
from tunesmith.train.data import build_sft_rows, load_splits
from tunesmith.train.resolve import resolve_template
from tunesmith.train.runner import build_trainer, finish_run, load_for_training, prepare_output_dir
from tunesmith.train.sft import run_sft
from tunesmith.utils.errors import ConfigError

pytest.importorskip("bitsandbytes")


def _cfg(over: dict, **extra: object):  # noqa: ANN202
    return load_config(None, {**over, "eval_dataset": "", "test_dataset": "", **extra})


def _train(cfg):  # noqa: ANN001, ANN202 - the sft workflow, keeping the trained model in hand
    from tunesmith.model.load import load_tokenizer

    path = cfg.model.model_name_or_path
    tok = load_tokenizer(path)
    template = resolve_template(cfg, path, tok)
    train_rows, val_rows, _ = build_sft_rows(load_splits(cfg), template, tok, cfg)
    prepare_output_dir(cfg)
    model = load_for_training(cfg, path)
    trainer, _ = build_trainer(cfg, model, tok.pad_token_id, train_rows, val_rows)
    return model, trainer, tok, template


def _ids() -> torch.Tensor:
    return torch.tensor([[2, 4, 60, 61, 62, 63, 5, 10, 4, 70, 71]])


@pytest.mark.parametrize("bits", [4, 8])
def test_qlora_trains_lora_and_leaves_the_quantized_base_alone(tiny_train_overrides: dict, bits: int) -> None:
    import bitsandbytes as bnb

    cfg = _cfg(tiny_train_overrides, quantization_bit=bits, max_steps=8, learning_rate=3e-2)
    model, trainer, tok, template = _train(cfg)
    layer = bnb.nn.Linear4bit if bits == 4 else bnb.nn.Linear8bitLt
    quantized = {n: m.weight.detach().clone() for n, m in model.named_modules() if isinstance(m, layer)}
    assert quantized, "the base must be loaded through bitsandbytes"
    assert all(w.dtype in (torch.uint8, torch.int8) for w in quantized.values())
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    trainer.train()
    after = dict(model.named_modules())
    assert all(torch.equal(after[n].weight, w) for n, w in quantized.items()), "the quantized base changed"
    assert all(not torch.equal(p, lora_before[n]) for n, p in model.named_parameters() if "lora_B" in n)
    result = finish_run(cfg, trainer, tok, template, started=0.0)
    assert result.metrics["final_loss"] < result.metrics["first_loss"]


def test_qlora_adapter_merges_into_the_unquantized_base(tiny_train_overrides: dict, tiny_model_dir: Path,
                                                        tmp_path: Path) -> None:
    from tunesmith.export.run import run_export

    run = run_sft(_cfg(tiny_train_overrides, quantization_bit=4, quantization_type="nf4", double_quantization=True,
                       max_steps=6, learning_rate=3e-2))
    exported = run_export(load_config(None, {
        "model_name_or_path": str(tiny_model_dir), "adapter_name_or_path": str(run.output_dir), "template": "gemma",
        "dataset": "unused", "bf16": False, "export_dir": str(tmp_path / "merged"), "export_check_tokens": 8,
        "export_check_samples": 3}))
    merged = next(r for r in exported.reports if r.name == "merged")
    assert merged.passed and merged.greedy_exact == "3/3", merged.problems
    cfg = json.loads((exported.export_dir / "config.json").read_text())
    assert "quantization_config" not in cfg, "the merged model is the full-precision base + the adapter"


@pytest.mark.parametrize("init", ["pissa", "olora"])
def test_rewriting_inits_are_saved_for_the_original_base(tiny_train_overrides: dict, tiny_model_dir: Path,
                                                         init: str) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cfg = _cfg(tiny_train_overrides, init_lora_weights=init, max_steps=4, learning_rate=2e-2)
    model, trainer, tok, template = _train(cfg)
    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    q_now = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight
    q_orig = original.model.layers[0].self_attn.q_proj.weight
    assert (q_now - q_orig).abs().max() > 1e-3, f"{init} moves part of each weight into the adapter"
    with torch.no_grad():  # at initialization the model is unchanged
        assert (model(_ids()).logits - original(_ids()).logits).abs().max() < 1e-3
    trainer.train()
    model.eval()
    with torch.no_grad():
        want = model(_ids()).logits
    out = finish_run(cfg, trainer, tok, template, started=0.0).output_dir
    assert not (out / "lora_init").exists()
    saved = json.loads((out / "adapter_config.json").read_text())
    assert saved["r"] == 2 * cfg.finetune.lora_rank, "converted to a LoRA of twice the rank"
    with torch.no_grad():
        got = PeftModel.from_pretrained(original, str(out)).eval()(_ids()).logits
    assert (got - want).abs().max() < 1e-3, "original base + saved adapter must be the trained model"


def test_loftq_sets_the_lora_against_the_4bit_error(tiny_train_overrides: dict) -> None:
    cfg = _cfg(tiny_train_overrides, quantization_bit=4, init_lora_weights="loftq", max_steps=1)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="loftq needs a CUDA GPU"):
            load_for_training(cfg, cfg.model.model_name_or_path)
        return
    model = load_for_training(cfg, cfg.model.model_name_or_path)
    b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert b and all(p.abs().sum() > 0 for p in b), "LoftQ starts B away from zero (default LoRA: B = 0)"
    with pytest.raises(ConfigError, match="quantization_bit: 4"):
        _cfg(tiny_train_overrides, init_lora_weights="loftq")


def _lora_b_norm(cfg) -> float:  # noqa: ANN001
    model, trainer, _, _ = _train(cfg)
    trainer.train()
    return sum(float(p.norm()) for n, p in model.named_parameters() if "lora_B" in n)


def test_loraplus_trains_b_faster(tiny_train_overrides: dict, tmp_path: Path) -> None:
    base = {"max_steps": 4, "learning_rate": 1e-3, "seed": 1}
    plain = _lora_b_norm(_cfg(tiny_train_overrides, **base, output_dir=str(tmp_path / "a")))
    plus = _lora_b_norm(_cfg(tiny_train_overrides, **base, loraplus_lr_ratio=16.0, output_dir=str(tmp_path / "b")))
    assert plus > 4 * plain, (plain, plus)
    model, trainer, _, _ = _train(_cfg(tiny_train_overrides, **base, loraplus_lr_ratio=16.0,
                                       output_dir=str(tmp_path / "c")))
    lrs = sorted({g["lr"] for g in trainer.create_optimizer().param_groups})
    assert lrs[-1] == pytest.approx(16 * 1e-3)


def test_neftune_adds_noise_in_training_only(tiny_train_overrides: dict, tmp_path: Path) -> None:
    runs = {}
    for alpha in (None, 5.0):
        cfg = _cfg(tiny_train_overrides, max_steps=1, learning_rate=1e-9, seed=2, neftune_noise_alpha=alpha,
                   output_dir=str(tmp_path / str(alpha)))
        runs[alpha] = run_sft(cfg).metrics["first_loss"]
    assert runs[5.0] != pytest.approx(runs[None], abs=1e-6), runs


def test_new_special_tokens_resize_and_train_the_embeddings(tiny_train_overrides: dict, dataset_dir: Path,
                                                            tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    rows = [{"instruction": f"Question {i}: what is {i} + 1?", "output": f"<answer>{i + 1}</answer>"}
            for i in range(8)]
    (dataset_dir / "tagged.json").write_text(json.dumps(rows))
    info = json.loads((dataset_dir / "dataset_info.json").read_text())
    (dataset_dir / "dataset_info.json").write_text(json.dumps({**info, "tagged": {"file_name": "tagged.json"}}))
    cfg = _cfg(tiny_train_overrides, dataset="tagged", new_special_tokens="<answer>,</answer>", max_steps=4)
    model, trainer, tok, template = _train(cfg)
    emb = model.get_input_embeddings()
    new_ids = tok.convert_tokens_to_ids(["<answer>", "</answer>"])
    vocab = AutoTokenizer.from_pretrained(tiny_model_dir).get_vocab()
    assert "<answer>" not in vocab and min(new_ids) >= len(vocab)
    before = emb.weight[new_ids].detach().clone()
    trainer.train()
    assert not torch.equal(model.get_input_embeddings().weight[new_ids], before), "new rows must train"
    out = finish_run(cfg, trainer, tok, template, started=0.0).output_dir
    saved = AutoTokenizer.from_pretrained(out)
    assert saved.convert_tokens_to_ids("<answer>") == new_ids[0]
    from tunesmith.export.run import run_export

    exported = run_export(load_config(None, {
        "model_name_or_path": str(tiny_model_dir), "adapter_name_or_path": str(out), "template": "gemma",
        "dataset": "unused", "bf16": False, "export_dir": str(tmp_path / "merged"), "export_check_tokens": 6,
        "export_check_samples": 2}))
    assert next(r for r in exported.reports if r.name == "merged").passed
    assert AutoTokenizer.from_pretrained(exported.export_dir).convert_tokens_to_ids("<answer>") == new_ids[0]


def test_rope_scaling_stretches_positions(tiny_train_overrides: dict, tiny_model_dir: Path) -> None:
    from tunesmith.inference.load import load_inference_model

    cfg = _cfg(tiny_train_overrides, rope_scaling="linear", cutoff_len=2048, max_steps=1)
    model = load_for_training(cfg, cfg.model.model_name_or_path)
    text = model.config.get_text_config()
    assert text.max_position_embeddings == 2048
    assert text.rope_parameters["full_attention"]["rope_type"] == "linear"
    assert text.rope_parameters["full_attention"]["factor"] == 2.0
    run = run_sft(cfg).output_dir  # chat / eval / export load the run with the same scaling
    loaded = load_inference_model(load_config(None, {"model_name_or_path": str(tiny_model_dir),
                                                     "adapter_name_or_path": str(run), "dataset": "unused"}))
    assert loaded.model.config.get_text_config().max_position_embeddings == 2048


def test_bad_combinations_are_config_errors(tiny_train_overrides: dict) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(tiny_train_overrides, finetuning_type="full", quantization_bit=4, loraplus_lr_ratio=4.0)
    assert "'quantization_bit' applies to finetuning_type: lora" in str(err.value)
    assert "'loraplus_lr_ratio' applies to finetuning_type: lora" in str(err.value)
    with pytest.raises(ConfigError, match="rewrites the base weights"):
        _cfg(tiny_train_overrides, quantization_bit=4, init_lora_weights="pissa")


def test_stages_that_load_their_own_model_refuse_the_keys_they_ignore(tiny_train_overrides: dict) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(tiny_train_overrides, stage="dpo", quantization_bit=4, neftune_noise_alpha=5.0,
             new_special_tokens="<x>")
    text = str(err.value)
    assert "'quantization_bit' is supported for stage sft and pt; stage dpo" in text
    assert "'neftune_noise_alpha' is supported" in text and "'new_special_tokens' is supported for stage sft" in text
