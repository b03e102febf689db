"""Write a merged model as a plain Hugging Face folder that any tool loads without tunesmith.

The folder holds sharded safetensors, the tokenizer with the Jinja ``chat_template`` equivalent to
the training template, and a ``generation_config.json`` whose ``eos_token_id`` lists every
end-of-turn id (with only ``<eos>``, a Gemma chat answer never stops: it runs to ``max_new_tokens``) and
whose sampling defaults are the ones the user set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.config.schema import EvalArgs
from tunesmith.data.templates import Template, to_jinja
from tunesmith.model.load import end_token_ids


def generation_config(model: Any, tokenizer: Any, template: Template, gen: EvalArgs) -> Any:
    """The base model's generation config with every end-of-turn id and the user's sampling defaults."""
    from transformers import GenerationConfig

    base = getattr(model, "generation_config", None) or GenerationConfig()
    out = GenerationConfig.from_dict(base.to_dict())
    out.eos_token_id = end_token_ids(tokenizer, template.stop_words)
    out.pad_token_id = tokenizer.pad_token_id
    out.bos_token_id = tokenizer.bos_token_id
    out.max_new_tokens = gen.max_new_tokens
    out.repetition_penalty = gen.repetition_penalty if gen.repetition_penalty != 1.0 else None
    if gen.temperature > 0:
        out.do_sample = True
        out.temperature = gen.temperature
        out.top_p = gen.top_p
        out.top_k = gen.top_k or None
    else:  # greedy: leave no sampling values that would make transformers warn
        out.do_sample = False
        out.temperature = None
        out.top_p = None
        out.top_k = None
    return out


def save_tokenizer(tokenizer: Any, template: Template, out: Path) -> None:
    """Tokenizer files with the chat template that renders exactly what training rendered."""
    tokenizer.chat_template = to_jinja(template)
    tokenizer.save_pretrained(out)


def write_merged(model: Any, tokenizer: Any, template: Template, out: Path, *, shard_gb: float,
                 gen: EvalArgs) -> list[str]:
    """Save a merged (plain transformers) model into ``out``; returns the weight file names."""
    gen_cfg = generation_config(model, tokenizer, template, gen)
    model.generation_config = gen_cfg
    model.save_pretrained(out, safe_serialization=True, max_shard_size=max(1, int(shard_gb * 1e9)))
    gen_cfg.save_pretrained(out)
    save_tokenizer(tokenizer, template, out)
    return sorted(p.name for p in out.glob("*.safetensors"))
