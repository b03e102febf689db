"""Answers for evaluation: generation settings and batched prediction with a progress bar."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tunesmith.data.records import SFTExample
from tunesmith.data.tokenize import encode_prompt
from tunesmith.model.generate import GenerationSettings, generate_ids
from tunesmith.model.generate import generation_settings as generation_settings  # the one precedence (re-exported)


def describe_settings(settings: GenerationSettings, source: dict[str, str] | None = None) -> str:
    """'greedy, max_new_tokens 128' or 'temperature 0.7, top_p 0.9, top_k 50, max_new_tokens 64'."""
    d = asdict(settings)
    parts = ["greedy"] if settings.temperature <= 0 else [
        f"{k} {d[k]}" for k in ("temperature", "top_p", "top_k") if k != "top_k" or d[k]]
    parts.append(f"max_new_tokens {settings.max_new_tokens}")
    if settings.repetition_penalty != 1.0:
        parts.append(f"repetition_penalty {settings.repetition_penalty}")
    from_model = [k for k, v in (source or {}).items() if v == "model"]
    return ", ".join(parts) + (f" ({', '.join(from_model)} from the model's generation config)" if from_model else "")


def predict(loaded: Any, examples: list[SFTExample], settings: GenerationSettings, batch_size: int,
            description: str = "predict") -> list[str]:
    """Answers for the prompts of ``examples`` (same chat template as training), with a progress bar."""
    from rich.progress import Progress

    from tunesmith.utils.console import console, progress_columns

    tok = loaded.tokenizer
    prompts = [encode_prompt(e.prompt_messages, e.system, loaded.template, tok) for e in examples]
    with Progress(*progress_columns(), console=console, transient=True) as bar:
        task = bar.add_task(description, total=len(prompts), info="")
        out = generate_ids(loaded.model, prompts, stop_ids=loaded.stop_ids, pad_id=tok.pad_token_id,
                           settings=settings, batch_size=batch_size,
                           progress=lambda n: bar.advance(task, n))
    return [tok.decode(ids, skip_special_tokens=True) for ids in out]
