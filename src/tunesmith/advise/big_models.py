"""The models the notes' users fine-tune, as shapes the estimate can use without downloading them, and
the memory matrix (model x method) that the README compares with LLaMA-Factory's published table.

Shapes are the models' config.json values (Qwen2.5 model cards on the Hugging Face hub);
DeepSeek-R1-Distill-Qwen-1.5B has Qwen2.5-Math-1.5B's shape (the same layers as Qwen2.5-1.5B).
"""

from __future__ import annotations

from typing import Any

from tunesmith.advise.estimate import ModelShape, Workload, peak_memory

# name -> (vocab, hidden, layers, intermediate, heads, kv_heads, head_dim, tied)
SIZES = {"Qwen/Qwen2.5-1.5B-Instruct": "1.5B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": "1.5B",
         "Qwen/Qwen2.5-7B-Instruct": "7B", "Qwen/Qwen2.5-14B-Instruct": "14B", "Qwen/Qwen2.5-32B-Instruct": "32B"}
SHAPES: dict[str, tuple[int, int, int, int, int, int, int, bool]] = {
    "Qwen/Qwen2.5-1.5B-Instruct": (151936, 1536, 28, 8960, 12, 2, 128, True),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": (151936, 1536, 28, 8960, 12, 2, 128, False),
    "Qwen/Qwen2.5-7B-Instruct": (152064, 3584, 28, 18944, 28, 4, 128, False),
    "Qwen/Qwen2.5-14B-Instruct": (152064, 5120, 48, 13824, 40, 8, 128, False),
    "Qwen/Qwen2.5-32B-Instruct": (152064, 5120, 64, 27648, 40, 8, 128, False),
}
# LLaMA-Factory's README ("Hardware Requirement", estimated GPU memory) for comparison: its "Full (bf16
# or fp16)" row (mixed precision, fp32 master weights: what tunesmith's full tuning does), "LoRA 16-bit",
# "QLoRA 8-bit" and "QLoRA 4-bit", 7B and 14B columns; its 30B column scaled by 32/30 for our 32B.
LLAMA_FACTORY_GB = {
    ("7B", "full"): 120, ("7B", "lora"): 16, ("7B", "qlora-8bit"): 10, ("7B", "qlora-4bit"): 6,
    ("14B", "full"): 240, ("14B", "lora"): 32, ("14B", "qlora-8bit"): 20, ("14B", "qlora-4bit"): 12,
    ("32B", "full"): 600 * 32 / 30, ("32B", "lora"): 64 * 32 / 30, ("32B", "qlora-8bit"): 40 * 32 / 30,
    ("32B", "qlora-4bit"): 24 * 32 / 30,
}
METHODS = {  # method -> finetuning_type, quantization_bit
    "full": ("full", None), "lora": ("lora", None), "qlora-8bit": ("lora", 8), "qlora-4bit": ("lora", 4),
}


def reference_shape(name: str) -> ModelShape | None:
    """The shape of a known model by its hub id (None if unknown)."""
    if name not in SHAPES:
        return None
    vocab, hidden, layers, inter, heads, kv, head_dim, tied = SHAPES[name]
    shape = ModelShape(name=name.split("/")[-1], vocab=vocab, hidden=hidden, layers=layers, intermediate=inter,
                       heads=heads, kv_heads=kv, head_dim=head_dim, tied=tied)
    norms = layers * 2 * hidden + hidden
    biases = layers * (heads + 2 * kv) * head_dim  # Qwen2's q/k/v biases
    shape.total_params = layers * shape.layer_linear_params + norms + biases + vocab * hidden * (1 if tied else 2)
    return shape


def small_run(finetuning_type: str, quant_bits: int | None, *, cutoff_len: int = 1024, batch: int = 1,
              rank: int = 8) -> Workload:
    """One short example per step, LoRA rank 8 on every linear layer, gradient checkpointing on: the
    setting under which the published tables quote memory (weights dominate)."""
    return Workload(tokens=cutoff_len * 100, loss_share=0.3, steps=100, batch_size=batch, grad_accum=1,
                    longest_row=cutoff_len, mean_len=cutoff_len, val_tokens=0, n_evals=0,
                    finetuning_type=finetuning_type, lora_rank=rank, lora_target=["all"], freeze_layers=2,
                    gradient_checkpointing=True, fast_path=True, cutoff_len=cutoff_len, epochs=1.0,
                    quant_bits=quant_bits)


def memory_matrix(context_gb: float = 1.0) -> list[dict[str, Any]]:
    """Peak GPU memory (GB, bf16) of each known model x method, beside LLaMA-Factory's figure if it has one."""
    rows = []
    for name in SHAPES:
        shape = reference_shape(name)
        assert shape is not None
        size = SIZES[name]
        for method, (kind, bits) in METHODS.items():
            mem = peak_memory(shape, small_run(kind, bits), bf16=True, overhead_bytes=context_gb * 1024**3)
            rows.append({"model": name, "size": size, "params_b": round(shape.total_params / 1e9, 2),
                         "method": method, "gb": round(mem.total / 1024**3, 1),
                         "llama_factory_gb": round(LLAMA_FACTORY_GB[(size, method)], 1)
                         if (size, method) in LLAMA_FACTORY_GB else None})
    return rows
