"""The chat tab's engine: the same loading and generation code as ``tunesmith chat``.

A model is loaded once (``train.resolve.load_inference_model``: base, base + adapter, or a merged
folder, with the run's own template and stop ids) and kept until another one is asked for; replies
stream token by token through ``model.generate.stream_ids``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tunesmith.config.schema import Config, ModelArgs

_lock = threading.Lock()
_loaded: dict[tuple[str, str | None, str], Any] = {}  # at most one entry: one model in memory at a time


@dataclass
class ChatSettings:
    """Sampling settings for one reply (the eval group's keys)."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0


def load(model: str, adapter: str | None = None, template: str = "auto") -> Any:
    """The loaded model for (model, adapter, template); loads it (and drops any other) if needed."""
    key = (model, adapter or None, template or "auto")
    with _lock:
        if key not in _loaded:
            from tunesmith.train.resolve import load_inference_model

            _loaded.clear()  # free the previous model before loading the next
            cfg = Config(model=ModelArgs(model_name_or_path=model, adapter_name_or_path=adapter or None,
                                         template=template or "auto"))
            _loaded[key] = load_inference_model(cfg)
        return _loaded[key]


def describe(loaded: Any) -> dict[str, str]:
    """What is loaded, for the status line."""
    tok = loaded.tokenizer
    stops = ", ".join(f"{tok.convert_ids_to_tokens(i)} ({i})" for i in loaded.stop_ids)
    return {"name": loaded.adapter_path or loaded.base_path, "template": loaded.template.name, "stops": stops}


def stream_reply(loaded: Any, history: list[tuple[str, str]], message: str, *, system: str | None = None,
                 settings: ChatSettings | None = None) -> Iterator[str]:
    """Yield the growing reply to ``message`` after the (user, assistant) turns in ``history``."""
    from tunesmith.data.records import Message
    from tunesmith.data.tokenize import encode_prompt
    from tunesmith.model.generate import GenerationSettings, stream_ids

    s = settings or ChatSettings()
    messages = [Message(role, text) for user, reply in history
                for role, text in (("user", user), ("assistant", reply))]
    messages.append(Message("user", message))
    tok = loaded.tokenizer
    prompt = encode_prompt(messages, system or None, loaded.template, tok)
    gen = GenerationSettings(s.max_new_tokens, s.temperature, s.top_p, s.top_k, s.repetition_penalty)
    for ids in stream_ids(loaded.model, prompt, stop_ids=loaded.stop_ids, pad_id=tok.pad_token_id, settings=gen):
        yield tok.decode(ids, skip_special_tokens=True)
