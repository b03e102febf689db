"""The chat tab's engine: the CLI's loading code, streaming replies that grow token by token."""

from __future__ import annotations

from pathlib import Path

from tunesmith.model.generate import GenerationSettings
from tunesmith.webui import chat


def test_chat_streams_a_reply_with_the_template_and_keeps_one_model(tiny_model_dir: Path) -> None:
    loaded = chat.load(str(tiny_model_dir), None, "gemma")
    assert chat.load(str(tiny_model_dir), None, "gemma") is loaded, "loaded once, reused"
    info = chat.describe(loaded)
    assert info["template"] == "gemma" and "<end_of_turn>" in info["stops"]
    settings = GenerationSettings(max_new_tokens=6)
    parts = list(chat.stream_reply(loaded, [("Hello", "Hi")], "What is 2 + 3?", system="Be brief.",
                                   settings=settings))
    assert 1 <= len(parts) <= 6
    assert all(b.startswith(a) for a, b in zip(parts, parts[1:])), "each step extends the reply"
    assert not parts[-1].endswith("\ufffd"), "a half-written character is held back"
    again = list(chat.stream_reply(loaded, [("Hello", "Hi")], "What is 2 + 3?", system="Be brief.",
                                   settings=settings))
    assert again[-1] == parts[-1], "greedy decoding is deterministic"
    other = chat.load(str(tiny_model_dir), None, "chatml")
    assert other is not loaded and other.template.name == "chatml"


def test_a_merged_export_brings_its_template(tmp_path: Path) -> None:
    (tmp_path / "tunesmith_export.json").write_text('{"template": "chatml"}')
    assert chat.template_for(str(tmp_path), "auto") == "chatml"
    assert chat.template_for(str(tmp_path), "gemma") == "gemma"
    assert chat.template_for("gemma-3-270m", "auto") == "auto"
