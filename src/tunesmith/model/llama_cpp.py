"""llama.cpp (llama-cpp-python, optional) as a generation backend for a GGUF file, e.g. tunesmith's export.

The prompt is built by tunesmith (the training template, the Hugging Face tokenizer) and handed to
llama.cpp as token ids, so the layout is the one the model was trained on whatever the file's own
Jinja says; generation stops at tunesmith's end-of-turn ids. ``serve.llama_cpp`` checks what
the file carries for people who run it in llama.cpp itself: its chat template must be the training
template's Jinja and its EOS / EOT ids must include every end-of-turn id (PITFALLS #1).

llama-cpp-python is built from source by pip (no CPU wheel on PyPI): see the README for how long it
took here. Sampling maps onto llama.cpp's: temperature 0 is greedy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunesmith.model.generate import GenerationSettings
from tunesmith.utils.lazy import require


def available() -> bool:
    """True when llama-cpp-python is installed (import is not attempted: it loads a shared library)."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


class LlamaCppGenerator:
    """One GGUF model in llama.cpp, generating from token ids."""

    def __init__(self, gguf: Path | str, *, n_ctx: int = 4096, n_threads: int | None = None) -> None:
        from tunesmith.utils.hardware import physical_cores

        llama_cpp = require("llama_cpp", package="llama-cpp-python")
        threads = n_threads or physical_cores()
        self.path = Path(gguf)
        self.llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=n_ctx, n_threads=threads,
                                   n_threads_batch=threads, n_batch=512, verbose=False)

    def stream(self, prompt: list[int], *, stop_ids: list[int],
               settings: GenerationSettings | None = None) -> Iterator[int]:
        """Yield new token ids one by one until an end-of-turn id (not yielded) or max_new_tokens."""
        s = settings or GenerationSettings()
        stops = set(stop_ids)
        greedy = s.temperature <= 0
        if s.seed is not None and not greedy:
            self.llm.set_seed(s.seed)
        tokens = self.llm.generate(prompt, top_k=1 if greedy else (s.top_k or 0), top_p=1.0 if greedy else s.top_p,
                                   min_p=0.0, temp=0.0 if greedy else s.temperature,
                                   repeat_penalty=s.repetition_penalty, reset=True)
        for n, token in enumerate(tokens):
            if token in stops:
                return
            yield int(token)
            if n + 1 >= s.max_new_tokens:
                return

    def generate_ids(self, prompts: list[list[int]], *, stop_ids: list[int],
                     settings: GenerationSettings | None = None) -> list[list[int]]:
        """Each prompt in turn (llama-cpp-python's high-level API decodes one sequence at a time)."""
        return [list(self.stream(p, stop_ids=stop_ids, settings=settings)) for p in prompts]


def bundled_gguf() -> Path | None:
    """The bundled model's Q4_K_M GGUF file when it has been assembled in tunesmith's cache."""
    from tunesmith.model.load import cache_root

    found = sorted((cache_root(None) / "gguf").glob("*.gguf"))
    return found[0] if found else None


def describe(gen: Any) -> str:
    """A one-line name for reports."""
    return f"llama.cpp ({Path(gen.path).name})"
