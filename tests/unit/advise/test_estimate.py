"""The FLOPs and memory model, the GPU table and the search for a config that fits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.advise.estimate import (
    GB,
    ModelShape,
    load_gpus,
    model_shape,
    nearest_fit,
    peak_memory,
    train_flops,
    workload,
)
from tunesmith.advise.profile import DataProfile
from tunesmith.config import load_config

# Llama-2-7B's dimensions: the numbers below can be checked by hand.
LLAMA7B = ModelShape("llama-7b", vocab=32000, hidden=4096, layers=32, intermediate=11008, heads=32, kv_heads=32,
                     head_dim=128, tied=False, total_params=6_738_415_616)


def data(n: int = 1000, length: int = 512) -> DataProfile:
    return DataProfile(kind="sft", n_train=n, n_val=100, n_test=100, n_rows=n, lengths=[length] * n,
                       tokens_per_epoch=n * length, label_tokens_per_epoch=n * length // 2, val_tokens=100 * length,
                       cutoff_len=1024)


def settings(**kw: object) -> dict:
    return load_config(None, {"dataset": "d", "per_device_train_batch_size": 4, "num_train_epochs": 2,
                              "cutoff_len": 1024, **kw}).flat()


def test_model_shape_reads_config_and_counts_parameters(tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    shape = model_shape(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert shape.total_params == sum(p.numel() for p in model.parameters())
    assert (shape.hidden, shape.layers, shape.heads, shape.kv_heads, shape.head_dim) == (32, 2, 2, 1, 16)
    from peft import LoraConfig, get_peft_model

    peft = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    lora = sum(p.numel() for n, p in peft.named_parameters() if "lora_" in n)
    assert shape.lora_params(4, ["all"]) == lora


def test_lora_parameter_count_of_a_7b_model() -> None:
    # per layer r * (in + out) over q, k, v, o (4096 -> 4096) and gate, up, down (4096 <-> 11008)
    per_layer = 8 * (4 * 8192 + 3 * (4096 + 11008))
    assert LLAMA7B.lora_params(8, ["all"]) == 32 * per_layer
    assert LLAMA7B.lora_params(8, ["q_proj", "v_proj"]) == 32 * 8 * 2 * 8192


def test_training_flops_follow_the_6n_rule() -> None:
    d = data()
    d.n_val = 0  # training only: evaluation is the same forward pass in every case
    w = workload(settings(finetuning_type="full", fast_path=False), d)
    n_body = 32 * LLAMA7B.layer_linear_params
    six_n = 6 * (n_body + 32000 * 4096) * w.tokens
    total = train_flops(LLAMA7B, w)
    assert six_n < total < 1.2 * six_n  # + attention
    lora = train_flops(LLAMA7B, workload(settings(finetuning_type="lora", fast_path=False), d))
    assert lora == pytest.approx(total * 2 / 3, rel=0.02)
    ckpt = train_flops(LLAMA7B, workload(settings(finetuning_type="lora", fast_path=False,
                                                  gradient_checkpointing=True), d))
    assert ckpt > lora * 1.3


def test_memory_model_parts() -> None:
    full = peak_memory(LLAMA7B, workload(settings(finetuning_type="full"), data()), bf16=True, overhead_bytes=0)
    assert full.weights == 4 * LLAMA7B.total_params and full.trainable_states == 12 * LLAMA7B.total_params
    lora_w = workload(settings(finetuning_type="lora"), data())
    lora = peak_memory(LLAMA7B, lora_w, bf16=True, overhead_bytes=0)
    assert lora.weights == 2 * LLAMA7B.total_params
    assert lora.trainable_states == 16 * LLAMA7B.lora_params(8, ["all"])
    ckpt = peak_memory(LLAMA7B, workload(settings(gradient_checkpointing=True), data()), bf16=True, overhead_bytes=0)
    assert ckpt.activations < lora.activations / 5
    slow = peak_memory(LLAMA7B, workload(settings(fast_path=False), data()), bf16=True, overhead_bytes=0)
    assert slow.logits == 4 * 512 * 32000 * 10 and lora.logits < slow.logits / 10


def test_gpu_table_loads_with_aliases(tmp_path: Path) -> None:
    gpus = load_gpus()
    assert {"T4", "4090", "A100-80G", "H100"} <= set(gpus)
    assert gpus["A100"] is gpus["A100-80G"] and not gpus["T4"].bf16
    bad = tmp_path / "g.yaml"
    bad.write_text("gpus:\n  X: {memory_gb: 8, typo: 1}\n")
    from tunesmith.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="gpus.X"):
        load_gpus(bad)


def test_a_config_that_fits_needs_no_change() -> None:
    s = settings()
    assert nearest_fit(LLAMA7B, data(), s, 80 * GB, bf16=True, overhead_bytes=GB) is None


def test_full_tuning_too_big_for_a_4090_becomes_a_fitting_config() -> None:
    s = settings(finetuning_type="full", learning_rate=1e-5, per_device_train_batch_size=16)
    d = data()
    budget = 24 * GB * 0.9
    assert peak_memory(LLAMA7B, workload(s, d), bf16=True, overhead_bytes=GB).total > budget
    fit = nearest_fit(LLAMA7B, d, s, budget, bf16=True, overhead_bytes=GB)
    assert fit is not None and fit.changes["finetuning_type"] == "lora"  # 16 bytes x 6.7B never fits 24 GB
    assert fit.changes["learning_rate"] == 2e-4
    assert fit.memory.total <= budget
    again = peak_memory(LLAMA7B, workload({**s, **fit.changes}, d), bf16=True, overhead_bytes=GB)
    assert again.total == fit.memory.total


def test_batch_shrinks_before_anything_else() -> None:
    s = settings(per_device_train_batch_size=64, gradient_accumulation_steps=1)
    d = data()
    need = peak_memory(LLAMA7B, workload(s, d), bf16=True, overhead_bytes=GB).total
    fit = nearest_fit(LLAMA7B, d, s, need * 0.6, bf16=True, overhead_bytes=GB)
    assert fit is not None and set(fit.changes) == {"per_device_train_batch_size", "gradient_accumulation_steps"}
    b, g = fit.changes["per_device_train_batch_size"], fit.changes["gradient_accumulation_steps"]
    assert b * g == 64 and b < 64


def test_shorter_cutoff_is_the_last_resort_and_reports_what_it_cuts() -> None:
    d = data(length=4000)
    d.lengths = [4000] * 10 + [300] * 990
    d.cutoff_len = 4096
    s = settings(cutoff_len=4096, per_device_train_batch_size=1)
    lora_ckpt = peak_memory(LLAMA7B, workload({**s, "gradient_checkpointing": True}, d), bf16=True,
                            overhead_bytes=GB).total
    # on a GPU a 4-bit base (QLoRA) comes before cutting the data
    fit = nearest_fit(LLAMA7B, d, s, lora_ckpt * 0.98, bf16=True, overhead_bytes=GB)
    assert fit is not None and fit.changes.get("quantization_bit") == 4 and "cutoff_len" not in fit.changes
    # on the CPU (no QLoRA offered there) the shorter cutoff_len is the last resort
    lora_ckpt = peak_memory(LLAMA7B, workload({**s, "gradient_checkpointing": True}, d), bf16=True,
                            overhead_bytes=GB, host=True).total
    fit = nearest_fit(LLAMA7B, d, s, lora_ckpt * 0.98, bf16=True, overhead_bytes=GB, host=True)
    assert fit is not None and fit.changes["cutoff_len"] < 4096
    assert any("cuts 10 of 1000" in n for n in fit.notes)


def test_on_the_host_loading_the_checkpoint_can_be_the_peak(tiny_model_dir: Path) -> None:
    shape = model_shape(str(tiny_model_dir))
    assert shape.checkpoint_bytes == (tiny_model_dir / "model.safetensors").stat().st_size
    w = workload(settings(), data(n=10, length=8))
    gpu = peak_memory(shape, w, bf16=True, overhead_bytes=GB)
    host = peak_memory(shape, w, bf16=True, overhead_bytes=GB, host=True)
    assert gpu.loading == 0 and host.loading == GB + shape.checkpoint_bytes + host.weights
    assert host.total == max(host.training, host.loading) >= gpu.total


def test_max_steps_overrides_epochs_both_ways() -> None:
    d = data(n=80, length=10)  # batch 4: 20 steps per epoch
    assert workload(settings(num_train_epochs=2), d).tokens == 2 * 800
    short = workload(settings(num_train_epochs=2, max_steps=10), d)
    long = workload(settings(num_train_epochs=2, max_steps=100), d)
    assert (short.steps, short.tokens) == (10, 400) and (long.steps, long.tokens) == (100, 4000)
