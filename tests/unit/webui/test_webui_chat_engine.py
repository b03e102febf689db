"""The web chat tab generates through the API's engine (serve.engine.Engine), and its replies equal the
terminal chat's, which generates without one."""

from __future__ import annotations

from pathlib import Path

from tunesmith.model.generate import GenerationSettings
from tunesmith.serve.chat import ChatSession
from tunesmith.webui import chat


def test_the_chat_tab_replies_through_the_engine(tiny_model_dir: Path) -> None:
    loaded = chat.load(str(tiny_model_dir), None, "gemma")
    engine = chat.engine_for(loaded)
    assert chat.engine_for(loaded) is engine, "one engine per loaded model"
    settings = GenerationSettings(max_new_tokens=8)
    before = engine.stats.requests
    tab = list(chat.stream_reply(loaded, [], "What is 2 + 3?", system="Be brief.", settings=settings))[-1]
    assert engine.stats.requests == before + 1, "the reply went through the engine"
    terminal = "".join(ChatSession(loaded, settings, "Be brief.").send("What is 2 + 3?"))
    assert tab == terminal
    chat.load(str(tiny_model_dir), None, "chatml")  # another model: the old engine is stopped
    assert engine._thread is None
