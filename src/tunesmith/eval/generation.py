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
            description: str = "predict", *, processor: Any = None) -> list[str]:
    """Answers for the prompts of ``examples`` (same chat template as training), with a progress bar.
    With a vision model's ``processor``, examples with images are answered one at a time with them."""
    from rich.progress import Progress

    from tunesmith.utils.console import console, progress_columns

    tok = loaded.tokenizer
    media = {i for i, e in enumerate(examples) if e.images} if processor is not None else set()
    text = [i for i in range(len(examples)) if i not in media]
    prompts = [encode_prompt(examples[i].prompt_messages, examples[i].system, loaded.template, tok) for i in text]
    answers: dict[int, list[int]] = {}
    with Progress(*progress_columns(), console=console, transient=True) as bar:
        task = bar.add_task(description, total=len(examples), info="")
        out = generate_ids(loaded.model, prompts, stop_ids=loaded.stop_ids, pad_id=tok.pad_token_id,
                           settings=settings, batch_size=batch_size,
                           progress=lambda n: bar.advance(task, n)) if prompts else []
        answers.update(zip(text, out))
        for i in sorted(media):
            answers[i] = _answer_with_images(loaded, processor, examples[i], settings)
            bar.advance(task, 1)
    return [tok.decode(answers[i], skip_special_tokens=True) for i in range(len(examples))]


def _answer_with_images(loaded: Any, processor: Any, example: SFTExample, settings: GenerationSettings) -> list[int]:
    from PIL import Image

    from tunesmith.data.vision import encode_vision_prompt
    from tunesmith.model.vision import generate_with_images

    images = []
    for path in example.images:
        with Image.open(path) as img:
            images.append(img.convert("RGB"))
    ids = encode_vision_prompt(example.prompt_messages, example.system, [im.size for im in images],
                               loaded.template, processor)
    return generate_with_images(loaded.model, processor, ids, images, stop_ids=loaded.stop_ids, settings=settings)
