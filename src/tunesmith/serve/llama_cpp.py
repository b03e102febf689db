"""Serving through llama.cpp: the checks a GGUF file must pass before chat or the API use it."""

from __future__ import annotations

from pathlib import Path


def gguf_chat_problems(gguf: Path, template_jinja: str | None, stop_ids: list[int]) -> list[str]:
    """What a GGUF file lacks for chat: a chat template equal to the training one, every end-of-turn id."""
    from tunesmith.export.gguf import gguf_tokenizer_extras

    file_template, _, file_stops = gguf_tokenizer_extras(gguf)
    problems = []
    if template_jinja is not None and file_template != template_jinja:
        problems.append(f"{gguf.name}: its chat template " + ("is missing" if file_template is None else
                        "differs from the training template's") + " (llama.cpp's own chat would lay turns out "
                        "differently from training; re-export with 'tunesmith export')")
    missing = sorted(set(stop_ids) - set(file_stops))
    if missing:
        problems.append(f"{gguf.name}: end-of-turn ids {missing} are not among its EOS / EOT ids {file_stops} "
                        "(llama.cpp would not stop at the end of a turn)")
    return problems
