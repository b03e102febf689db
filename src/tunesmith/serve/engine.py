"""The serving engine: one base model, several LoRA adapters, and batches that concurrent requests share.

Requests are put on a queue; a background thread takes every pending request that shares sampling
settings (up to ``max_batch_size``), left-pads their prompts and runs them through one
``generate`` call — concurrent clients share each forward pass. Requests for different adapters ride
in the same batch: peft applies each row's adapter (``adapter_names``), and the base weights are
loaded once and never reloaded. Tokens stream back to each request as they are produced; a row stops
at its own end-of-turn id, its own ``max_tokens``, or when its client goes away.

Batching is static (a batch runs until its last row ends; requests arriving meanwhile form the next
batch). With ``max_batch_size=1`` the engine serves one request at a time — the baseline the
throughput benchmark compares against.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.config.schema import Config
from tunesmith.model.generate import GenerationSettings
from tunesmith.utils.errors import ConfigError

BASE = "__base__"  # peft's name for "no adapter" in a mixed batch

# emit(new token ids so far, finish_reason or None) is called from the engine thread
Emit = Callable[[list[int], str | None], None]


@dataclass
class GenRequest:
    """One generation: prompt ids, settings, the adapter to use, and where to send tokens."""

    prompt: list[int]
    settings: GenerationSettings
    emit: Emit
    adapter: str = BASE
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    cancelled: bool = False
    tokens: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    media: dict[str, Any] | None = None  # a vision model's pixel inputs for this prompt (it runs alone)

    def sampling_key(self) -> tuple:
        s = self.settings
        if self.media is not None:
            return ("media", self.id)
        return (s.temperature, s.top_p, s.top_k, s.repetition_penalty, s.seed, self.id if s.seed is not None else None
                ) if s.temperature > 0 else (0.0, 1.0, 0, s.repetition_penalty, None, None)  # seeded: a batch alone


@dataclass
class EngineStats:
    batches: int = 0
    requests: int = 0
    generated_tokens: int = 0
    largest_batch: int = 0


class _BatchStreamer:
    """Receives each step's tokens for the whole batch (transformers calls put() once per step)."""

    def __init__(self, rows: list[GenRequest], stop_ids: set[int]) -> None:
        self.rows = rows
        self.stop_ids = stop_ids
        self.seen_prompt = False

    def put(self, value: Any) -> None:
        if not self.seen_prompt:  # the first call carries the prompt
            self.seen_prompt = True
            return
        for row, token in zip(self.rows, value.reshape(-1).tolist()):
            if row.finish_reason is not None:
                continue
            if token in self.stop_ids:
                self._finish(row, "stop")
                continue
            row.tokens.append(token)
            if len(row.tokens) >= row.settings.max_new_tokens:
                self._finish(row, "length")
            else:
                row.emit(list(row.tokens), None)

    def end(self) -> None:
        for row in self.rows:
            if row.finish_reason is None:
                self._finish(row, "length")

    @staticmethod
    def _finish(row: GenRequest, reason: str) -> None:
        row.finish_reason = "cancelled" if row.cancelled else reason
        row.emit(list(row.tokens), row.finish_reason)


def _row_stopping(rows: list[GenRequest], width: int) -> Any:
    """A stopping criterion that ends each row at its own max_tokens or when its client left."""
    import torch
    from transformers import StoppingCriteria

    limits = torch.tensor([r.settings.max_new_tokens for r in rows])

    class RowStop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = (input_ids.shape[1] - width) >= limits.to(input_ids.device)
            cancelled = torch.tensor([r.cancelled or r.finish_reason is not None for r in rows],
                                     device=input_ids.device)
            return done | cancelled

    return RowStop()


class Engine:
    """A loaded model (+ adapters) that generates for queued requests in shared batches."""

    def __init__(self, model: Any, tokenizer: Any, template: Any, stop_ids: list[int], *,
                 base_name: str, adapters: dict[str, str] | None = None, max_batch_size: int = 8,
                 batch_wait_s: float = 0.005) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        self.stop_ids = list(stop_ids)
        self.base_name = base_name
        self.adapters = dict(adapters or {})  # served name -> peft adapter name
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self.stats = EngineStats()
        self._queue: queue.Queue[GenRequest] = queue.Queue()
        self._pending: list[GenRequest] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.created = int(time.time())
        self.processor: Any = None  # a vision model's processor: image_url parts are accepted
        self.media_dir: str | None = None  # the folder local image paths may come from (none: data: URLs only)

    # ---- names ------------------------------------------------------------------------------
    @property
    def model_names(self) -> list[str]:
        return [self.base_name, *self.adapters]

    def adapter_for(self, model_name: str) -> str | None:
        """The peft adapter for a served model name (BASE for the base model), None if unknown."""
        if model_name == self.base_name:
            return BASE
        return self.adapters.get(model_name)

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> Engine:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="tunesmith-engine", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def submit(self, request: GenRequest) -> GenRequest:
        self._queue.put(request)
        return request

    def stream(self, prompt: list[int], settings: GenerationSettings, adapter: str = BASE,
               media: dict[str, Any] | None = None) -> Iterator[list[int]]:
        """Submit one request and yield its growing list of new tokens (what a chat front end shows);
        leaving the loop early cancels the request. ``media``: a vision model's pixel inputs for the prompt."""
        return stream_request(self.submit, prompt, settings, adapter, media)

    def generate(self, prompt: list[int], settings: GenerationSettings, adapter: str = BASE) -> GenRequest:
        """Blocking convenience: submit one request and wait until it finishes."""
        return generate_request(self.submit, prompt, settings, adapter)

    # ---- the loop ----------------------------------------------------------------------------
    def _take_batch(self) -> list[GenRequest]:
        """Block for a first request, then gather those waiting with the same sampling settings."""
        if not self._pending:
            try:
                self._pending.append(self._queue.get(timeout=0.1))
            except queue.Empty:
                return []
            time.sleep(self.batch_wait_s)  # let requests sent at the same moment join
        while True:
            try:
                self._pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for r in self._pending:
            if r.cancelled:  # its client left while it waited
                r.finish_reason = "cancelled"
                r.emit(list(r.tokens), "cancelled")
        self._pending = [r for r in self._pending if not r.cancelled]
        if not self._pending:
            return []
        key = self._pending[0].sampling_key()
        batch = [r for r in self._pending if r.sampling_key() == key][: self.max_batch_size]
        taken = {id(r) for r in batch}
        self._pending = [r for r in self._pending if id(r) not in taken]
        return batch

    def _loop(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch()
            if not batch:
                continue
            try:
                self._run(batch)
            except Exception as exc:  # one bad batch must not take the server down
                for r in batch:
                    if r.finish_reason is None:
                        r.finish_reason = f"error: {exc}"
                        r.emit(list(r.tokens), r.finish_reason)

    def _run(self, rows: list[GenRequest]) -> None:
        from tunesmith.model.generate import run_generate

        device = next(self.model.parameters()).device
        width = max(len(r.prompt) for r in rows)  # the left-padded batch's prompt width
        streamer = _BatchStreamer(rows, set(self.stop_ids))
        extra: dict[str, Any] = {"streamer": streamer, "stopping_criteria": [_row_stopping(rows, width)]}
        if self.adapters:
            extra["adapter_names"] = [r.adapter for r in rows]
        if rows[0].media is not None:  # alone in its batch: no padding, the pixel inputs match its ids
            extra.update({k: v.to(device) for k, v in rows[0].media.items()})
        self.stats.batches += 1
        self.stats.requests += len(rows)
        self.stats.largest_batch = max(self.stats.largest_batch, len(rows))
        # A seeded request runs alone (sampling_key), so its answer does not depend on other requests.
        run_generate(self.model, [r.prompt for r in rows], settings=rows[0].settings, stop_ids=self.stop_ids,
                     pad_id=self.tokenizer.pad_token_id, max_new_tokens=max(r.settings.max_new_tokens for r in rows),
                     **extra)
        self.stats.generated_tokens += sum(len(r.tokens) for r in rows)
        streamer.end()


def stream_request(submit: Callable[[GenRequest], GenRequest], prompt: list[int], settings: GenerationSettings,
                   adapter: str = BASE, media: dict[str, Any] | None = None) -> Iterator[list[int]]:
    """Submit one request through ``submit`` (an engine's) and yield its growing list of new tokens;
    leaving the loop early cancels the request. Shared by every engine."""
    updates: queue.Queue[tuple[list[int], str | None]] = queue.Queue()
    request = submit(GenRequest(prompt, settings, lambda ids, finish: updates.put((ids, finish)), adapter,
                                media=media))
    try:
        shown = 0
        while True:
            ids, finish = updates.get()
            if len(ids) > shown:
                shown = len(ids)
                yield list(ids)
            if finish is not None:
                if finish.startswith("error"):
                    raise RuntimeError(f"generation failed: {finish}")
                return
    finally:
        request.cancelled = request.finish_reason is None  # the consumer left before the end


def generate_request(submit: Callable[[GenRequest], GenRequest], prompt: list[int], settings: GenerationSettings,
                     adapter: str = BASE) -> GenRequest:
    """Submit one request through ``submit`` and wait until it finishes."""
    done = threading.Event()

    def emit(_ids: list[int], finish: str | None) -> None:
        if finish is not None:
            done.set()

    request = submit(GenRequest(prompt, settings, emit, adapter))
    done.wait()
    return request


def parse_adapters(items: list[str]) -> dict[str, str]:
    """{name: path} from 'name=path' items, checking every path holds an adapter."""
    from tunesmith.model.adapters import is_adapter_dir

    out: dict[str, str] = {}
    problems = []
    for item in items:
        name, _, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if name in out:
            problems.append(f"'adapters': the name {name!r} is used twice")
        elif not is_adapter_dir(path):
            problems.append(f"'adapters': {name}={path!r} is not an adapter folder (no adapter_config.json)")
        out[name] = path
    if problems:
        raise ConfigError(problems)
    return out


def load_engine(cfg: Config) -> Engine:
    """Load the base once, attach every adapter under its served name, and start the engine."""
    from tunesmith.inference.load import load_inference_model

    adapters = parse_adapters(cfg.serve.adapters)
    if cfg.model.adapter_name_or_path:
        adapters = {Path(cfg.model.adapter_name_or_path).name: cfg.model.adapter_name_or_path, **adapters}
    first = next(iter(adapters.values()), None)
    load_cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"adapter_name_or_path": first})})
    loaded = load_inference_model(load_cfg)
    peft_names: dict[str, str] = {}
    for i, (name, path) in enumerate(adapters.items()):
        if i == 0:
            peft_names[name] = "default"  # load_inference_model attached the first one as 'default'
            continue
        loaded.model.load_adapter(path, adapter_name=name)
        peft_names[name] = name
    base_name = cfg.serve.served_model_name or Path(cfg.model.model_name_or_path).name
    if base_name in peft_names:
        raise ConfigError([f"'served_model_name': {base_name!r} is also an adapter name; choose another"])
    engine = Engine(loaded.model, loaded.tokenizer, loaded.template, loaded.stop_ids, base_name=base_name,
                    adapters=peft_names, max_batch_size=cfg.serve.max_batch_size)
    from tunesmith.model.vision import is_vision_model, load_processor

    if is_vision_model(loaded.base_path):  # image_url parts accepted; local paths only under media_dir
        engine.processor = load_processor(loaded.base_path, cfg.data)
        engine.media_dir = cfg.data.media_folder
    return engine.start()
