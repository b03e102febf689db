"""The chat tab's engine: the same loading and chat session as ``tunesmith chat``, the same engine as the API.

A model is loaded once (``inference.load.load_inference_model``: base, base + adapter, or a merged
folder, with the run's own template and stop ids) and kept until another one is asked for, with a
``serve.engine.Engine`` on it (what ``tunesmith serve`` runs: its batching, its generation call);
replies stream through ``serve.chat.ChatSession``, which renders the history with the training
template and holds back half-written characters.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunesmith.config.schema import Config, ModelArgs
from tunesmith.data.records import Message
from tunesmith.model.generate import GenerationSettings

_lock = threading.Lock()
_loaded: dict[tuple[str, str | None, str], Any] = {}  # at most one entry: one model in memory at a time
_engines: dict[int, Any] = {}  # id(loaded) -> the started Engine on it
EXPORT_MANIFEST = "tunesmith_export.json"  # written by `tunesmith export`; names the template


def template_for(model: str, template: str) -> str:
    """The template to use: as asked, or for 'auto' the one a merged export folder records."""
    manifest = Path(model) / EXPORT_MANIFEST
    if template in ("", "auto") and manifest.is_file():
        return json.loads(manifest.read_text(encoding="utf-8")).get("template", "auto")
    return template or "auto"


def load(model: str, adapter: str | None = None, template: str = "auto") -> Any:
    """The loaded model for (model, adapter, template); loads it (and drops any other) if needed."""
    key = (model, adapter or None, template_for(model, template))
    with _lock:
        if key not in _loaded:
            from tunesmith.inference.load import load_inference_model

            for engine in _engines.values():
                engine.stop()
            _engines.clear()
            _loaded.clear()  # free the previous model before loading the next
            cfg = Config(model=ModelArgs(model_name_or_path=key[0], adapter_name_or_path=key[1], template=key[2]))
            _loaded[key] = load_inference_model(cfg)
        return _loaded[key]


def engine_for(loaded: Any) -> Any:
    """The started engine generating for ``loaded`` (made on first use)."""
    from tunesmith.serve.engine import Engine

    with _lock:
        if id(loaded) not in _engines:
            _engines[id(loaded)] = Engine(loaded.model, loaded.tokenizer, loaded.template, loaded.stop_ids,
                                          base_name=loaded.adapter_path or loaded.base_path).start()
        return _engines[id(loaded)]


def describe(loaded: Any) -> dict[str, str]:
    """What is loaded, for the status line."""
    tok = loaded.tokenizer
    stops = ", ".join(f"{tok.convert_ids_to_tokens(i)} ({i})" for i in loaded.stop_ids)
    return {"name": loaded.adapter_path or loaded.base_path, "template": loaded.template.name, "stops": stops}


_processors: dict[str, Any] = {}


def processor_for(loaded: Any) -> Any:
    """A vision model's processor (None for a text-only model), loaded once per model folder."""
    from tunesmith.model.vision import is_vision_model, load_processor

    with _lock:
        if loaded.base_path not in _processors:
            _processors[loaded.base_path] = load_processor(loaded.base_path) if is_vision_model(loaded.base_path) \
                else None
        return _processors[loaded.base_path]


def stream_reply(loaded: Any, history: list[tuple[str, str]], message: str, *, system: str | None = None,
                 settings: GenerationSettings | None = None, images: list[str] | None = None,
                 earlier_images: list[str] | None = None) -> Iterator[str]:
    """Yield the growing reply to ``message`` after the (user, assistant) turns in ``history``; ``images``
    are shown with this message, ``earlier_images`` are those of earlier turns (their <image> placeholders
    are in ``history``)."""
    from tunesmith.serve.chat import ChatSession

    processor = processor_for(loaded) if images or earlier_images else None
    session = ChatSession(loaded, settings or GenerationSettings(), system or None, engine=engine_for(loaded),
                          processor=processor)
    session.history = [Message(role, text) for user, reply in history
                       for role, text in (("user", user), ("assistant", reply))]
    session.images = list(earlier_images or [])
    reply = ""
    for piece in session.send(message, images):
        reply += piece
        yield reply
