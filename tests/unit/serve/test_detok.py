"""Streamed text never drops or re-spells what was sent, with byte-fallback tokens (Gemma-style tokenizer)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from conftest import build_sentencepiece_tokenizer
from tunesmith.serve.chat import text_deltas
from tunesmith.serve.detok import IncrementalText


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> object:
    path: Path = tmp_path_factory.mktemp("sp-tok")
    build_sentencepiece_tokenizer(path)
    return AutoTokenizer.from_pretrained(path)


def _stream(tok: object, ids: list[int]) -> list[str]:
    return list(text_deltas(tok, (ids[:k] for k in range(1, len(ids) + 1))))


def _byte(tok: object, b: int) -> int:
    return tok.convert_tokens_to_ids(f"<0x{b:02X}>")


@pytest.mark.parametrize("text", ["龘靐齉爩 hello , world 𠀀𪚥 end", "数学 语文 😀🚀 ok", "a  b   c\n\n d 𝔘𝔫𝔦"])
def test_valid_text_streams_to_exactly_the_decoded_answer(tok: object, text: str) -> None:
    ids = tok.encode(text, add_special_tokens=False)
    assert any(t.startswith("<0x") for t in tok.convert_ids_to_tokens(ids))  # byte fallback is exercised
    pieces = _stream(tok, ids)
    assert "".join(pieces) == tok.decode(ids, skip_special_tokens=True)
    assert not any(p.endswith("\ufffd") for p in pieces)  # no half characters on the way


def test_a_character_that_later_bytes_respell_does_not_drop_the_rest(tok: object) -> None:
    # '<0xD5><0xB4>' is 'մ'; the stray bytes after it decode to replacement characters, and a decoder
    # that compares whole-answer decodes saw the answer stop starting with 'մ' and sent nothing more.
    ids = [_byte(tok, b) for b in (0xD5, 0xB4, 0xC9, 0xF1, 0x97)] + tok.encode(" hello", add_special_tokens=False)
    text = "".join(_stream(tok, ids))
    assert text.startswith("մ") and text.endswith("hello")


def test_random_byte_answers_lose_no_text(tok: object) -> None:
    words = tok.encode("数学 hello , ok 物理", add_special_tokens=False)
    rng = random.Random(0)
    for _ in range(200):
        ids = [rng.choice([_byte(tok, b) for b in range(0x80, 0x100)] + words) for _ in range(rng.randint(2, 12))]
        full = tok.decode(ids, skip_special_tokens=True)
        streamed = "".join(_stream(tok, ids))
        # every printable (non-replacement) character of the answer arrives, in order (a window that starts
        # between bytes may read a stray pair as one more character; nothing is dropped)
        rest = iter(streamed)
        assert all(c in rest for c in full if c != "\ufffd"), (ids, full, streamed)


def test_final_flush_sends_an_incomplete_last_character(tok: object) -> None:
    ids = tok.encode("ok", add_special_tokens=False) + [_byte(tok, 0xE4)]
    text = IncrementalText(tok)
    assert text.add(ids[:-1]) == "ok"
    assert text.add(ids) == ""  # a lead byte waits for the rest of its character
    assert text.add(ids, final=True) == "\ufffd" and text.text == "ok\ufffd"
