"""Load a model for generation: base, base + adapter (its base and template from the run record), or a
full fine-tune or merged export, with the tokenizer, chat template and stop ids that go with it.

Names are resolved exactly as training resolves them (``train/resolve.py``), so chat, eval, export and
serve use the template the model was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunesmith.config.schema import Config
from tunesmith.data.templates import Template
from tunesmith.model.load import end_token_ids, load_model, load_tokenizer, resolve_model_path
from tunesmith.train.resolve import inference_source, resolve_template


@dataclass
class Loaded:
    """A model ready for generation, with the tokenizer, template and stop ids that go with it."""

    model: Any
    tokenizer: Any
    template: Template
    stop_ids: list[int]
    base_path: str
    adapter_path: str | None = None


def load_inference_model(cfg: Config, *, dtype: Any = None, merge: bool = False) -> Loaded:
    """Base model (+ adapter) for generation, bf16 where the machine supports it."""
    import torch

    from tunesmith.model.adapters import adapter_vocab_size, load_adapter, merge_adapter
    from tunesmith.utils.hardware import bf16_available

    base, adapter = inference_source(cfg)
    path = resolve_model_path(base, cfg.model.cache_dir)
    if dtype is None:
        want_bf16 = cfg.train.bf16 if cfg.train.bf16 is not None else bf16_available()
        dtype = torch.bfloat16 if want_bf16 else torch.float32
    tokenizer = load_tokenizer(path, trust_remote_code=cfg.model.trust_remote_code)
    if adapter and (adapter_vocab_size(adapter) or 0) > len(tokenizer):  # the run added new_special_tokens
        tokenizer = load_tokenizer(adapter, trust_remote_code=cfg.model.trust_remote_code)
    model = load_model(path, dtype=dtype, trust_remote_code=cfg.model.trust_remote_code,
                       config=_rope_config(cfg, path, adapter))
    if adapter:
        model = load_adapter(model, adapter)
        if merge:
            model = merge_adapter(model)
    model.eval()
    template = resolve_template(cfg, path, tokenizer)
    return Loaded(model, tokenizer, template, end_token_ids(tokenizer, template.stop_words), path, adapter)


def _rope_config(cfg: Config, path: str, adapter: str | None) -> Any:
    """The model config with the RoPE scaling the run trained with (None when it used none)."""
    from tunesmith.train.resolve import run_settings

    saved = run_settings(adapter) if adapter else {}
    kind = cfg.model.rope_scaling or saved.get("rope_scaling")
    if not kind:
        return None
    from tunesmith.model.peft_extras import rope_scaled_config

    cutoff = saved.get("cutoff_len", cfg.data.cutoff_len) if not cfg.model.rope_scaling else cfg.data.cutoff_len
    return rope_scaled_config(path, kind, int(cutoff), trust_remote_code=cfg.model.trust_remote_code)
