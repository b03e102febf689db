"""int8 frozen base weights for fp32 LoRA training (issue 17's first idea), measured and not adopted.

Each frozen nn.Linear under a LoRA layer becomes an FBGEMM int8 matmul (weights per output channel,
activations and output gradients quantized per tensor on the fly, 7-bit ``reduce_range`` as AVX2
needs) for the forward and the input gradient; LoRA weights stay fp32. This script prints the loss
of one batch at identical weights, fp32 vs int8, and the time of a forward + backward of each,
taking turns. Run it under the AVX2 caps to see the AVX2 class:

    MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \
    FBGEMM_ENABLE_INSTRUCTIONS=AVX2 python benchmarks/int8_base.py

Measured 2026-12-03 (Sapphire Rapids with AVX-512/AMX disabled by those variables, load average
~11 on 2 cores): loss 1.534 (fp32) vs 1.959 (int8), 28% apart at identical weights on the bundled
model, which no learning bound allows (per-tensor activation scales: Gemma's activations have
outlier channels); per-token scales through ``torch._int_mm`` (oneDNN s8s8s32) cannot pay either,
as that matmul ran at about fp32's speed under AVX2 (25 vs 24 GOP/s at 512x640x2048) before any
quantization work. See the README's speed section.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

QUANT_ENGINE = "fbgemm"


def available() -> bool:
    """True when torch has FBGEMM's quantized kernels (x86 builds do)."""
    return QUANT_ENGINE in torch.backends.quantized.supported_engines


def _pack(weight: torch.Tensor) -> Any:
    """FBGEMM-packed int8 copy of a (out, in) fp32 weight, one scale per output row."""
    import warnings

    w = weight.detach().float().contiguous()
    scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()
    with warnings.catch_warnings():  # quantized tensors are "deprecated"; FBGEMM's packing still needs one
        warnings.simplefilter("ignore", UserWarning)
        q = torch.quantize_per_channel(w, scale, torch.zeros_like(scale, dtype=torch.long), 0, torch.qint8)
    return torch.ops.quantized.linear_prepack(q, None)


class _Int8Matmul(torch.autograd.Function):
    """y = x W^T with the forward and the input gradient both in int8 (W frozen: no weight gradient)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layer: Int8FrozenLinear) -> torch.Tensor:
        ctx.layer = layer
        shape = x.shape
        y = torch.ops.quantized.linear_dynamic(x.reshape(-1, shape[-1]).float().contiguous(), layer.packed,
                                               True)
        return y.view(*shape[:-1], layer.out_features).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        layer = ctx.layer
        shape = grad.shape
        gx = torch.ops.quantized.linear_dynamic(grad.reshape(-1, shape[-1]).float().contiguous(),
                                                layer.packed_t, True)
        return gx.view(*shape[:-1], layer.in_features).to(grad.dtype), None


class Int8FrozenLinear(torch.nn.Module):
    """A frozen ``nn.Linear`` whose weight lives (twice) in int8; the bias, if any, stays fp32."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed = _pack(linear.weight)
        self.packed_t = _pack(linear.weight.t())
        bias = linear.bias.detach().float().clone() if linear.bias is not None else None
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _Int8Matmul.apply(x, self)
        return y + self.bias.to(y.dtype) if self.bias is not None else y

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 (FBGEMM)"


def quantize_lora_base(model: Any) -> int:
    """Replace the frozen base ``nn.Linear`` of every peft LoRA layer by an int8 one; returns how many.

    Only LoRA's own base layers are touched: the embedding and the output layer (tied to it, used by
    the fast loss) and every trained weight keep their dtype. Call after the adapter is attached.
    """
    from peft.tuners.lora import LoraLayer

    torch.backends.quantized.engine = QUANT_ENGINE
    count = 0
    for module in model.modules():
        if not isinstance(module, LoraLayer):
            continue
        base = module.get_base_layer()
        if type(base) is not torch.nn.Linear or base.weight.requires_grad:
            continue
        owner = module
        while getattr(owner, "base_layer", None) is not base:  # nested wrappers: find the direct parent
            owner = owner.base_layer
        owner.base_layer = Int8FrozenLinear(base)
        count += 1
    return count


def main() -> None:
    from tunesmith.config.schema import FinetuneArgs
    from tunesmith.model.adapters import apply_finetuning
    from tunesmith.model.load import load_model, load_tokenizer, resolve_model_path
    from tunesmith.train.benchmark import make_examples
    from tunesmith.train.collate import PadCollator
    from tunesmith.train.fast import fast_causal_lm_loss

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    path = resolve_model_path("gemma-3-270m")
    tok = load_tokenizer(path)
    rows = make_examples(tok, 256, 8)
    batches = [PadCollator(tok.pad_token_id)(rows[i:i + 4]) for i in (0, 4)]

    def build(int8: bool) -> Any:
        torch.manual_seed(0)
        model = load_model(path, dtype=torch.float32)
        model.config.use_cache = False
        model = apply_finetuning(model, FinetuneArgs(lora_rank=8, lora_alpha=16, lora_dropout=0.0))
        if int8:
            print("int8 layers:", quantize_lora_base(model))
        return model

    models = {"fp32": build(False), "int8": build(True)}
    for name, model in models.items():
        loss, _ = fast_causal_lm_loss(model, dict(batches[0]))
        print(f"{name} loss at identical weights: {loss.item():.4f}")
    for rep in range(3):
        for name, model in models.items():
            t0 = time.perf_counter()
            loss, _ = fast_causal_lm_loss(model, dict(batches[rep % 2]))
            loss.backward()
            print(f"{rep} {name}: {time.perf_counter() - t0:.2f} s forward + backward, "
                  f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
