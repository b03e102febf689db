"""Training-side wiring of QLoRA, RoPE scaling and LoRA+ (the model side is model/peft_extras.py)."""

from __future__ import annotations

from typing import Any

from tunesmith.config.schema import Config
from tunesmith.model.load import load_model


def load_training_base(cfg: Config, model_path: str, dtype: Any) -> Any:
    """The base model for training: quantized for QLoRA, RoPE-scaled when asked, prepared for k-bit."""
    from tunesmith.model.peft_extras import bnb_config, prepare_quantized, rope_scaled_config

    ft = cfg.finetune
    quant = bnb_config(ft, dtype) if ft.quantization_bit else None
    config = None
    if cfg.model.rope_scaling:
        config = rope_scaled_config(model_path, cfg.model.rope_scaling, cfg.data.cutoff_len,
                                    trust_remote_code=cfg.model.trust_remote_code)
    model = load_model(model_path, dtype=dtype, trust_remote_code=cfg.model.trust_remote_code,
                       quantization_config=quant, config=config)
    if quant is not None:
        model = prepare_quantized(model, gradient_checkpointing=cfg.train.gradient_checkpointing, dtype=dtype)
    if ft.new_special_tokens:
        from tunesmith.model.load import load_tokenizer
        from tunesmith.model.peft_extras import add_special_tokens

        add_special_tokens(model, load_tokenizer(model_path, trust_remote_code=cfg.model.trust_remote_code),
                           ft.new_special_tokens)
    return model


def loraplus_optimizer(cfg: Config, model: Any) -> Any:
    """LoRA+: AdamW with the B matrices at loraplus_lr_ratio x the learning rate (None when off)."""
    ft = cfg.finetune
    if ft.loraplus_lr_ratio is None or not hasattr(model, "peft_config"):
        return None
    import torch
    from peft.optimizers import create_loraplus_optimizer

    return create_loraplus_optimizer(model, torch.optim.AdamW, lr=cfg.train.learning_rate,
                                     loraplus_lr_ratio=ft.loraplus_lr_ratio,
                                     loraplus_lr_embedding=ft.loraplus_lr_embedding,
                                     weight_decay=cfg.train.weight_decay)
