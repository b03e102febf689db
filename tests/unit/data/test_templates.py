"""Chat templates: which tokens carry loss, the end-of-turn token is trained, Jinja parity, truncation."""

from __future__ import annotations

import jinja2
import pytest

from tunesmith.data.records import Message, SFTExample
from tunesmith.data.templates import TEMPLATES, get_template, to_jinja
from tunesmith.data.tokenize import IGNORE_INDEX, encode_prompt, encode_sft, pack
from tunesmith.utils.errors import ConfigError

CONV = SFTExample([Message("user", "What is 2+3?"), Message("assistant", "5"), Message("user", "And 2+4?"),
                   Message("assistant", "6")], system="Answer briefly.")


def _trained_text(tok, enc) -> str:  # noqa: ANN001
    return tok.decode([i for i, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE_INDEX])


# templates whose markers the tiny tokenizer knows (every family: test_chat_templates.py)
TINY = ("gemma", "chatml", "qwen", "qwen2", "llama3", "llama3.1", "default")


@pytest.mark.parametrize("name", TINY)
def test_only_assistant_turns_and_their_end_marker_carry_loss(tiny_tokenizer, name: str) -> None:  # noqa: ANN001
    tmpl = TEMPLATES[name]
    enc, full = encode_sft(CONV, tmpl, tiny_tokenizer, cutoff_len=1024)
    trained = _trained_text(tiny_tokenizer, enc)
    end = tmpl.stop_words[0] if tmpl.stop_words else tiny_tokenizer.eos_token
    assert trained == f"5{end}6{end}", trained
    assert "What is" not in trained and "Answer briefly" not in trained
    assert full == len(enc.input_ids)


def test_gemma_rendering_matches_the_models_format(tiny_tokenizer) -> None:  # noqa: ANN001
    text = TEMPLATES["gemma"].render(CONV.messages, CONV.system, bos="<bos>")
    assert text == ("<bos><start_of_turn>user\nAnswer briefly.\n\nWhat is 2+3?<end_of_turn>\n<start_of_turn>model\n"
                    "5<end_of_turn>\n<start_of_turn>user\nAnd 2+4?<end_of_turn>\n<start_of_turn>model\n"
                    "6<end_of_turn>\n")


def test_mask_history_trains_last_turn_only(tiny_tokenizer) -> None:  # noqa: ANN001
    enc, _ = encode_sft(CONV, TEMPLATES["gemma"], tiny_tokenizer, 1024, mask_history=True)
    assert _trained_text(tiny_tokenizer, enc) == "6<end_of_turn>"


def test_train_on_prompt_trains_everything_but_separators(tiny_tokenizer) -> None:  # noqa: ANN001
    enc, _ = encode_sft(CONV, TEMPLATES["chatml"], tiny_tokenizer, 1024, train_on_prompt=True)
    assert "What is 2+3?" in _trained_text(tiny_tokenizer, enc)


@pytest.mark.parametrize("name", TINY)
def test_prompt_for_chat_equals_training_prefix(tiny_tokenizer, name: str) -> None:  # noqa: ANN001
    """The tokens chat sends are exactly the tokens training saw before the answer."""
    tmpl = TEMPLATES[name]
    enc, _ = encode_sft(CONV, tmpl, tiny_tokenizer, 1024)
    prompt = encode_prompt(CONV.messages[:3], CONV.system, tmpl, tiny_tokenizer)
    assert enc.input_ids[: len(prompt)] == prompt
    assert enc.labels[len(prompt)] != IGNORE_INDEX  # the answer starts right after


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_jinja_template_renders_identically(name: str) -> None:
    tmpl = TEMPLATES[name]
    msgs = [{"role": "system", "content": "S"}] + [{"role": m.role, "content": m.content} for m in CONV.messages]
    jinja = jinja2.Environment().from_string(to_jinja(tmpl)).render(messages=msgs, bos_token="<B>", eos_token="<E>")
    assert jinja == tmpl.render(CONV.messages, "S", bos="<B>", eos="<E>")


def test_truncation_keeps_the_answer_and_reports(tiny_tokenizer) -> None:  # noqa: ANN001
    long = SFTExample([Message("user", "word " * 200), Message("assistant", "final answer")])
    enc, full = encode_sft(long, TEMPLATES["gemma"], tiny_tokenizer, cutoff_len=40)
    assert enc.truncated and full > 40 and len(enc.input_ids) == 40
    assert _trained_text(tiny_tokenizer, enc).startswith("final answer")


def test_auto_template_and_unknown_name() -> None:
    assert get_template("auto", "gemma3_text").name == "gemma"
    assert get_template("auto", "qwen2").name == "qwen"
    assert get_template("auto", "qwen3").name == "qwen3"
    assert get_template("qwen2.5").name == "qwen"
    with pytest.raises(ConfigError, match="did you mean 'gemma'"):
        get_template("gema")


def test_packing_restarts_positions() -> None:
    rows = pack([([1, 2, 3], [-100, 2, 3]), ([4, 5], [-100, 5]), ([6, 7, 8, 9], [-100, -100, 8, 9])], 6)
    assert all(len(r["input_ids"]) <= 6 for r in rows)
    flat = sorted(sum((r["input_ids"] for r in rows), []))
    assert flat == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    for r in rows:
        starts = [i for i, p in enumerate(r["position_ids"]) if p == 0]
        assert all(r["labels"][i] == IGNORE_INDEX for i in starts)
