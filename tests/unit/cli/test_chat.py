"""The chat loop, driven through its input: streaming, multi-turn history, /system, /reset, /exit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.config import load_config
from tunesmith.data.records import Message
from tunesmith.data.tokenize import encode_prompt
from tunesmith.inference.load import load_inference_model
from tunesmith.model.generate import GenerationSettings, generate_ids
from tunesmith.serve.chat import ChatSession, run_chat


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path, tiny_adapters: dict[str, Path]):  # noqa: ANN201 - a Loaded
    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir), "adapter_name_or_path":
                             str(tiny_adapters["alpha"]), "template": "gemma", "dataset": "unused", "bf16": False})
    return load_inference_model(cfg)


def _drive(session: ChatSession, lines: list[str]) -> tuple[list[str], list[str]]:
    """Run the loop on scripted lines; returns (what was written, lines never read)."""
    pending = list(lines)
    written: list[str] = []
    run_chat(session, lambda: pending.pop(0) + "\n" if pending else "", written.append)
    return written, pending


def _expected(loaded, messages: list[Message], system: str | None, n: int) -> str:  # noqa: ANN001
    ids = encode_prompt(messages, system, loaded.template, loaded.tokenizer)
    out = generate_ids(loaded.model, [ids], stop_ids=loaded.stop_ids, pad_id=loaded.tokenizer.pad_token_id,
                       settings=GenerationSettings(max_new_tokens=n))[0]
    return loaded.tokenizer.decode(out, skip_special_tokens=True)


def test_replies_stream_and_keep_the_history(loaded) -> None:  # noqa: ANN001
    session = ChatSession(loaded, GenerationSettings(max_new_tokens=6))
    written, unread = _drive(session, ["What is 2 + 3?", "And 4 + 4?", "/exit", "never read"])
    assert unread == ["never read"], "/exit stops the loop"
    first = _expected(loaded, [Message("user", "What is 2 + 3?")], None, 6)
    assert session.history[0:2] == [Message("user", "What is 2 + 3?"), Message("assistant", first)]
    second = _expected(loaded, session.history[:3], None, 6)
    assert session.history[3] == Message("assistant", second), "the second turn sees the first one"
    text = "".join(written)
    assert f"Model: {first}\n" in text and f"Model: {second}\n" in text
    model_at = written.index("Model: ")
    assert written.index("\n", model_at) - model_at > 2, "the reply arrives as several streamed pieces"


def test_system_prompt_and_reset(loaded) -> None:  # noqa: ANN001
    session = ChatSession(loaded, GenerationSettings(max_new_tokens=6))
    written, _ = _drive(session, ["/system Answer in one word.", "What is 2 + 3?"])
    assert "(system prompt set; history cleared)" in "".join(written)
    assert session.system == "Answer in one word."
    want = _expected(loaded, [Message("user", "What is 2 + 3?")], "Answer in one word.", 6)
    assert session.history[-1].content == want
    written, _ = _drive(session, ["/reset", "/bogus", ""])
    assert session.history == [] and session.system == "Answer in one word."
    assert "(history cleared)" in "".join(written) and "unknown command /bogus" in "".join(written)


def test_end_of_input_ends_the_chat(loaded) -> None:  # noqa: ANN001
    session = ChatSession(loaded, GenerationSettings(max_new_tokens=3))
    assert run_chat(session, lambda: "", lambda _t: None) == 0


def test_chat_command_end_to_end(tiny_model_dir: Path, tiny_adapters: dict[str, Path]) -> None:
    from typer.testing import CliRunner

    from tunesmith.cli.main import app

    result = CliRunner().invoke(app, ["chat", "template=gemma", "bf16=false", "--model", str(tiny_model_dir),
                                      "--adapter", str(tiny_adapters["beta"]), "--max-new-tokens", "4",
                                      "--system", "Be brief."], input="hello\n/exit\n")
    assert result.exit_code == 0, result.output
    assert "template gemma" in result.output and result.output.count("Model: ") == 1
