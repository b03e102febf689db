"""The chat tab's engine: the CLI's loading code, streaming replies that grow token by token."""

from __future__ import annotations

from pathlib import Path

from tunesmith.webui import chat


def test_chat_streams_a_reply_with_the_template_and_keeps_one_model(tiny_model_dir: Path) -> None:
    loaded = chat.load(str(tiny_model_dir), None, "gemma")
    assert chat.load(str(tiny_model_dir), None, "gemma") is loaded, "loaded once, reused"
    info = chat.describe(loaded)
    assert info["template"] == "gemma" and "<end_of_turn>" in info["stops"]
    settings = chat.ChatSettings(max_new_tokens=6)
    parts = list(chat.stream_reply(loaded, [("Hello", "Hi")], "What is 2 + 3?", system="Be brief.",
                                   settings=settings))
    assert 1 <= len(parts) <= 6
    assert all(b.startswith(a) or not a for a, b in zip(parts, parts[1:])), parts
    again = list(chat.stream_reply(loaded, [("Hello", "Hi")], "What is 2 + 3?", system="Be brief.",
                                   settings=settings))
    assert again[-1] == parts[-1], "greedy decoding is deterministic"
    other = chat.load(str(tiny_model_dir), None, "chatml")
    assert other is not loaded and other.template.name == "chatml"
