"""Cross-field rules for QLoRA and the LoRA variants (quantization_bit, init_lora_weights, LoRA+, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunesmith.config.schema import Config, FinetuneArgs


def lora_init(f: FinetuneArgs) -> str:
    """The LoRA initialization to use: init_lora_weights, or pissa when LLaMA-Factory's pissa_init is set."""
    return "pissa" if f.pissa_init and f.init_lora_weights == "default" else f.init_lora_weights


def peft_problems(cfg: Config) -> list[str]:
    """What is wrong with the QLoRA / LoRA-variant keys together ([] when nothing)."""
    f = cfg.finetune
    problems: list[str] = []
    lora_only = {
        "quantization_bit": f.quantization_bit is not None,
        "loraplus_lr_ratio": f.loraplus_lr_ratio is not None,
        "init_lora_weights": f.init_lora_weights != "default" or f.pissa_init,
        "additional_target": bool(f.additional_target),
    }
    if f.finetuning_type != "lora":
        for key, used in lora_only.items():
            if used:
                problems.append(f"'{key}' applies to finetuning_type: lora only (got finetuning_type: "
                                f"{f.finetuning_type}); remove it or use lora")
    if f.stage not in ("sft", "pt"):  # the TRL stages (rm, dpo, kto, orpo, simpo, grpo) load their model themselves
        used = {"quantization_bit": f.quantization_bit is not None,
                "loraplus_lr_ratio": f.loraplus_lr_ratio is not None,
                "init_lora_weights": f.init_lora_weights != "default" or f.pissa_init,
                "neftune_noise_alpha": cfg.train.neftune_noise_alpha is not None,
                "rope_scaling": cfg.model.rope_scaling is not None}
        for key in (k for k, on in used.items() if on):
            problems.append(f"'{key}' is supported for stage sft and pt; stage {f.stage} does not use it yet")
    if f.new_special_tokens and f.stage != "sft":
        problems.append(f"'new_special_tokens' is supported for stage sft; stage {f.stage} does not add them yet")
    if f.pissa_init and f.init_lora_weights not in ("default", "pissa"):
        problems.append(f"'pissa_init': true conflicts with init_lora_weights: {f.init_lora_weights}; keep one")
    if lora_init(f) == "loftq" and f.quantization_bit != 4:
        problems.append("'init_lora_weights': loftq initializes the adapter against the 4-bit base's rounding "
                        "error; set quantization_bit: 4 (QLoRA)")
    if f.quantization_bit is not None and lora_init(f) in ("pissa", "olora"):
        problems.append(f"'init_lora_weights': {lora_init(f)} rewrites the base weights, which a "
                        f"{f.quantization_bit}-bit base cannot hold exactly; train it unquantized, or use loftq")
    if f.quantization_bit is not None and f.new_special_tokens:
        problems.append("'new_special_tokens' with quantization_bit: the resized embeddings would be trained on top "
                        "of a quantized model; add the tokens in an unquantized run")
    if f.quantization_bit is not None and cfg.distributed.deepspeed:
        problems.append("'quantization_bit' with DeepSpeed: ZeRO partitions the weights bitsandbytes packs; use one")
    return problems
