"""llama.cpp (llama-cpp-python, optional) as a generation backend for a GGUF file, e.g. tunesmith's export.

The prompt is built by tunesmith (the training template, the Hugging Face tokenizer) and handed to
llama.cpp as token ids, so the layout is the one the model was trained on whatever the file's own
Jinja says; generation stops at tunesmith's end-of-turn ids. ``serve.llama_cpp`` checks what
the file carries for people who run it in llama.cpp itself: its chat template must be the training
template's Jinja and its EOS / EOT ids must include every end-of-turn id (PITFALLS #1).

llama-cpp-python is built from source by pip (no CPU wheel on PyPI): ``scripts/install_llamacpp.sh``
picks the build flags for this CPU. A build with ggml's AMX int8 kernels (the default
``GGML_NATIVE=ON`` build on Intel Sapphire Rapids and later) segfaulted in ``ggml_backend_amx_mul_mat``
on the first decode of a Q4_K_M Gemma 3 here, taking the whole process down: such a build is
refused before any model loads (``check_build``). Sampling maps onto llama.cpp's: temperature 0 is
greedy.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunesmith.model.generate import GenerationSettings
from tunesmith.utils.errors import ModelLoadError
from tunesmith.utils.lazy import require

ALLOW_AMX_ENV = "TUNESMITH_LLAMACPP_ALLOW_AMX"
INSTALL_SCRIPT = ("bash scripts/install_llamacpp.sh (builds llama-cpp-python from source with flags chosen from "
                  "/proc/cpuinfo; about 4 minutes on 2 idle cores)")
# What the AMX-free build on Intel Sapphire Rapids here used (what scripts/install_llamacpp.sh picks there).
AMX_FREE_CMAKE_ARGS = ("-DLLAVA_BUILD=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON "
                       "-DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON "
                       "-DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF")
INSTALL_BY_HAND = (f"CMAKE_ARGS=\"{AMX_FREE_CMAKE_ARGS}\" pip install --no-cache-dir "
                   "--force-reinstall 'llama-cpp-python>=0.3.30' (on a CPU without amx_int8 in /proc/cpuinfo, plain "
                   "pip install 'tunesmith[llamacpp]' builds for this CPU)")
RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a fresh random seed per sampler


def available() -> bool:
    """True when llama-cpp-python is installed (import is not attempted: it loads a shared library)."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def system_info() -> str:
    """llama.cpp's build report ('CPU : SSE3 = 1 | AVX2 = 1 | ... AMX_INT8 = 1 | ...')."""
    llama_cpp = require("llama_cpp", package="llama-cpp-python")
    info = llama_cpp.llama_print_system_info()
    return info.decode() if isinstance(info, bytes) else str(info)


def amx_int8_build() -> bool:
    """True when this llama.cpp was built with ggml's AMX int8 kernels (the ones that crashed here)."""
    return "AMX_INT8 = 1" in system_info()


def check_build() -> None:
    """Refuse a llama.cpp build with AMX int8 kernels (unless $TUNESMITH_LLAMACPP_ALLOW_AMX=1): one
    segfaulted on its first decode here, and a segfault ends the chat or server with it."""
    if os.environ.get(ALLOW_AMX_ENV) == "1" or not amx_int8_build():
        return
    raise ModelLoadError(
        "this llama-cpp-python was built with ggml's AMX int8 kernels (llama_print_system_info() reports "
        "AMX_INT8 = 1). That build (pip's default GGML_NATIVE=ON on Intel Sapphire Rapids and later) segfaulted "
        "in ggml_backend_amx_mul_mat on the first decode of a Q4_K_M Gemma 3 on this kind of machine, which would "
        "end the whole chat or server without a word",
        hint=f"rebuild it without AMX: {INSTALL_SCRIPT}, or by hand: {INSTALL_BY_HAND}; or set {ALLOW_AMX_ENV}=1 "
        "to try this build anyway",
    )


class FreeCores:
    """How many of our cores other processes leave free, judged between two calls from /proc/stat's busy
    time less this process's own CPU time (no sleeping, so it can be asked between tokens)."""

    def __init__(self, cores: int, min_window_s: float = 0.5, cpus: int | None = None) -> None:
        self.cores = cores  # ours (the affinity mask)
        self.cpus = cpus or os.cpu_count() or 1  # the machine's, as /proc/stat counts them
        self.min_window_s = min_window_s
        self.last = self.sample()

    @staticmethod
    def sample() -> tuple[int, int, float, float] | None:
        """(all CPUs' ticks, idle ticks, this process's CPU seconds, monotonic seconds), None off Linux."""
        import time

        from tunesmith.utils.hardware import cpu_ticks

        ticks = cpu_ticks()
        if ticks is None:
            return None
        t = os.times()
        return ticks[0], ticks[1], t.user + t.system, time.monotonic()

    def threads(self) -> int | None:
        """Threads to use now, or None when the window since the last judgement is too short to judge."""
        now, last = self.sample(), self.last
        if now is None or last is None or now[3] - last[3] < self.min_window_s or now[0] <= last[0]:
            return None
        self.last = now
        ticks = now[0] - last[0]
        busy_cpus = (ticks - (now[1] - last[1])) / ticks * self.cpus
        others = max(0.0, busy_cpus - (now[2] - last[2]) / (now[3] - last[3]))
        return max(1, min(self.cores, round(self.cores - others)))


class LlamaCppGenerator:
    """One GGUF model in llama.cpp, generating from token ids.

    ``fit_threads`` (chat and the API): use only the cores other processes leave free, judged at the start
    of each generation and every 32 tokens. llama.cpp's OpenMP threads wait for each other at every
    layer, and one thread whose core is taken stalls all of them: with another process using 1.5 of
    this machine's 2 cores, 2 threads ran the bundled Q4_K_M at 1.1 tokens/s and 1 thread at 23.6
    (idle: 41 with 2)."""

    def __init__(self, gguf: Path | str, *, n_ctx: int = 4096, n_threads: int | None = None,
                 fit_threads: bool = False) -> None:
        from tunesmith.utils.hardware import physical_cores

        llama_cpp = require("llama_cpp", package="llama-cpp-python")
        check_build()  # before the file loads: the crash comes at the first decode
        self.threads = n_threads or physical_cores()
        self.path = Path(gguf)
        self.n_ctx = n_ctx
        self.llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=n_ctx, n_threads=self.threads,
                                   n_threads_batch=self.threads, n_batch=512, verbose=False)
        self._free = FreeCores(self.threads) if fit_threads else None

    def _fit_threads(self) -> None:
        n = self._free.threads() if self._free is not None else None
        if n is not None and n != self.threads:
            import llama_cpp

            llama_cpp.llama_set_n_threads(self.llm.ctx, n, n)
            self.threads = n

    @property
    def n_vocab(self) -> int:
        return int(self.llm.n_vocab())

    def token_text(self, token: int) -> str:
        """How the file spells one token (special tokens by name, e.g. '<end_of_turn>')."""
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def close(self) -> None:
        """Free the model and its context now (left to the garbage collector, llama-cpp-python's
        finalizer can run after interpreter shutdown has begun and fail)."""
        self.llm.close()

    def steps(self, prompt: list[int], settings: GenerationSettings) -> Iterator[int]:
        """Every sampled token id, end-of-turn ids included, for as long as the caller keeps reading
        (the caller stops at its stop ids, its token limit and the context size ``n_ctx``).

        temperature 0 is greedy; else top_k (0 = off), top_p and temperature, seeded when asked (else a
        fresh random seed). repetition_penalty is llama.cpp's, over the last 64 tokens (transformers' looks
        at the whole sequence). A prompt that shares a prefix with the previous one reuses its KV cache."""
        s = settings
        greedy = s.temperature <= 0
        self.llm.set_seed(s.seed if s.seed is not None else RANDOM_SEED)
        self._fit_threads()
        tokens = self.llm.generate(prompt, top_k=1 if greedy else (s.top_k or 0), top_p=1.0 if greedy else s.top_p,
                                   min_p=0.0, typical_p=1.0, temp=0.0 if greedy else s.temperature,
                                   repeat_penalty=s.repetition_penalty, reset=True)
        try:
            for n, token in enumerate(tokens, 1):
                yield token
                if n % 32 == 0:
                    self._fit_threads()
        finally:
            tokens.close()

    def stream(self, prompt: list[int], *, stop_ids: list[int],
               settings: GenerationSettings | None = None) -> Iterator[int]:
        """Yield new token ids one by one until an end-of-turn id (not yielded), max_new_tokens or a full context."""
        s = settings or GenerationSettings()
        stops = set(stop_ids)
        limit = min(s.max_new_tokens, self.n_ctx - len(prompt))
        if limit < 1:
            return
        tokens = self.steps(prompt, s)
        try:
            for n, token in enumerate(tokens):
                if token in stops:
                    return
                yield int(token)
                if n + 1 >= limit:
                    return
        finally:
            tokens.close()

    def generate_ids(self, prompts: list[list[int]], *, stop_ids: list[int],
                     settings: GenerationSettings | None = None) -> list[list[int]]:
        """Each prompt in turn (llama-cpp-python's high-level API decodes one sequence at a time)."""
        return [list(self.stream(p, stop_ids=stop_ids, settings=settings)) for p in prompts]

    def __enter__(self) -> LlamaCppGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bundled_gguf() -> Path | None:
    """The bundled model's Q4_K_M GGUF file when it has been assembled in tunesmith's cache."""
    from tunesmith.model.load import cache_root

    found = sorted((cache_root(None) / "gguf").glob("*.gguf"))
    return found[0] if found else None


def describe(gen: Any) -> str:
    """A one-line name for reports."""
    return f"llama.cpp ({Path(gen.path).name})"
