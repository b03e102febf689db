"""Turn canonical examples into token ids and labels.

Labels are -100 except on assistant replies (and their end-of-turn marker, so the model learns to
stop). Conversations are tokenized segment by segment with the template, so the boundary of every
reply is exact. Truncation is counted and reported, never silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunesmith.data.records import Message, SFTExample, TextExample
from tunesmith.data.templates import Template

IGNORE_INDEX = -100


@dataclass
class Encoded:
    """One tokenized example."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False
    origin: str | None = None

    @property
    def n_label_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


@dataclass
class EncodeStats:
    """What tokenization did to a dataset: reported by 'data check' and training."""

    n_examples: int = 0
    n_truncated: int = 0
    n_no_labels: int = 0
    n_tokens: int = 0
    n_label_tokens: int = 0
    lengths: list[int] = field(default_factory=list)
    truncated_origins: list[str] = field(default_factory=list)

    def add(self, enc: Encoded, full_length: int) -> None:
        self.n_examples += 1
        self.n_tokens += len(enc.input_ids)
        self.n_label_tokens += enc.n_label_tokens
        self.lengths.append(full_length)
        if enc.truncated:
            self.n_truncated += 1
            if enc.origin and len(self.truncated_origins) < 20:
                self.truncated_origins.append(enc.origin)
        if enc.n_label_tokens == 0:
            self.n_no_labels += 1

    @property
    def loss_share(self) -> float:
        return self.n_label_tokens / max(1, self.n_tokens)


def _ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False) if text else []


def _trained_flags(segments: list[tuple[str, bool]], train_on_prompt: bool, last_only: bool) -> list[bool]:
    last_assistant = max((i for i, (_, a) in enumerate(segments) if a), default=-1)
    return [(a and (not last_only or i == last_assistant)) or (train_on_prompt and not a)
            for i, (_, a) in enumerate(segments)]


def encode_segments(tokenizer: Any, segments: list[tuple[str, bool]], *, train_on_prompt: bool = False,
                    last_only: bool = False, whole: bool = False) -> tuple[list[int], list[int]]:
    """Tokenize (text, is_assistant) segments; labels on assistant segments (or all, if train_on_prompt).

    ``whole`` tokenizes the joined text once (what an inference engine does with a rendered chat) and
    labels each token by the segment its first character falls in; built-in templates tokenize
    segment by segment, which their tests check gives the same ids as the whole official rendering.
    """
    flags = _trained_flags(segments, train_on_prompt, last_only)
    if whole and getattr(tokenizer, "is_fast", False):
        return _encode_whole(tokenizer, segments, flags)
    input_ids: list[int] = []
    labels: list[int] = []
    for (text, _), trained in zip(segments, flags, strict=True):
        ids = _ids(tokenizer, text)
        input_ids += ids
        labels += ids if trained else [IGNORE_INDEX] * len(ids)
    return input_ids, labels


def _encode_whole(tokenizer: Any, segments: list[tuple[str, bool]], flags: list[bool]) -> tuple[list[int], list[int]]:
    import bisect

    text = "".join(t for t, _ in segments)
    starts, pos = [], 0
    for t, _ in segments:
        starts.append(pos)
        pos += len(t)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = [tok if flags[bisect.bisect_right(starts, start) - 1] else IGNORE_INDEX
              for tok, (start, _) in zip(ids, enc["offset_mapping"], strict=True)]
    return ids, labels


def _truncate(input_ids: list[int], labels: list[int], cutoff_len: int) -> tuple[list[int], list[int]]:
    """Keep the answer when the sequence is too long: drop prompt tokens from the left of the last
    prompt first (keeping the start-of-text token), then cut the end."""
    if len(input_ids) <= cutoff_len:
        return input_ids, labels
    excess = len(input_ids) - cutoff_len
    first_label = next((i for i, x in enumerate(labels) if x != IGNORE_INDEX), len(labels))
    # Removable prompt span: after the first token (BOS) up to the first label.
    start, end = 1, first_label
    removable = max(0, end - start - 8)  # keep a few tokens of prompt (the assistant header)
    cut = min(excess, removable)
    if cut:
        input_ids = input_ids[:start] + input_ids[start + cut:]
        labels = labels[:start] + labels[start + cut:]
    return input_ids[:cutoff_len], labels[:cutoff_len]


def encode_sft(example: SFTExample, template: Template, tokenizer: Any, cutoff_len: int, *,
               train_on_prompt: bool = False, mask_history: bool = False,
               enable_thinking: bool | None = None) -> tuple[Encoded, int]:
    """Tokenize one conversation; returns (encoded, length before truncation)."""
    segments = template.segments(example.messages, example.system, tokenizer.bos_token, tokenizer.eos_token,
                                 enable_thinking=enable_thinking)
    input_ids, labels = encode_segments(tokenizer, segments, train_on_prompt=train_on_prompt,
                                        last_only=mask_history, whole=hasattr(template, "source"))
    full = len(input_ids)
    input_ids, labels = _truncate(input_ids, labels, cutoff_len)
    origin = str(example.origin) if example.origin else None
    return Encoded(input_ids, labels, truncated=full > cutoff_len, origin=origin), full


def encode_prompt(messages: list[Message], system: str | None, template: Template, tokenizer: Any, *,
                  enable_thinking: bool | None = None) -> list[int]:
    """Token ids of a prompt ready for generation (ends with the assistant header)."""
    segments = template.segments(messages, system, tokenizer.bos_token, tokenizer.eos_token,
                                 add_generation_prompt=True, enable_thinking=enable_thinking)
    if hasattr(template, "source"):
        return _ids(tokenizer, "".join(t for t, _ in segments))
    return [i for text, _ in segments for i in _ids(tokenizer, text)]


def encode_text(example: TextExample, tokenizer: Any) -> list[int]:
    """Pre-training text: BOS + text + EOS, all trained."""
    ids = _ids(tokenizer, example.text)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return bos + ids + eos


def pack(sequences: list[tuple[list[int], list[int]]], cutoff_len: int) -> list[dict[str, list[int]]]:
    """Greedy first-fit packing into rows of at most cutoff_len tokens.

    Each row carries ``position_ids`` that restart at 0 for every example, which transformers reads
    as packed sequences: attention never crosses an example boundary.
    """
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i][0]))
    rows: list[dict[str, list[int]]] = []
    space: list[int] = []
    for i in order:
        ids, labels = sequences[i]
        ids, labels = ids[:cutoff_len], labels[:cutoff_len]
        slot = next((r for r, free in enumerate(space) if free >= len(ids)), None)
        if slot is None:
            rows.append({"input_ids": [], "labels": [], "position_ids": []})
            space.append(cutoff_len)
            slot = len(rows) - 1
        row = rows[slot]
        row["input_ids"] += ids
        # The first token of each packed example has no left context to predict it from.
        row["labels"] += [IGNORE_INDEX] + labels[1:]
        row["position_ids"] += list(range(len(ids)))
        space[slot] -= len(ids)
    return rows


def chunk_text(token_lists: list[list[int]], cutoff_len: int, *, pack: bool = True) -> list[dict[str, list[int]]]:
    """Pre-training: concatenate documents and cut into cutoff_len blocks (positions restart per doc).

    ``pack=False`` keeps one document per row: a document's last block is not filled up with the next one.
    """
    rows: list[dict[str, list[int]]] = []
    cur: dict[str, list[int]] = {"input_ids": [], "labels": [], "position_ids": []}
    for doc in token_lists:
        if not pack and len(cur["input_ids"]) > 1:
            rows.append(cur)
        if not pack:
            cur = {"input_ids": [], "labels": [], "position_ids": []}
        pos = 0
        while doc:
            room = cutoff_len - len(cur["input_ids"])
            piece, doc = doc[:room], doc[room:]
            cur["input_ids"] += piece
            cur["labels"] += [IGNORE_INDEX] + piece[1:] if pos == 0 else piece
            cur["position_ids"] += list(range(pos, pos + len(piece)))
            pos += len(piece)
            if len(cur["input_ids"]) >= cutoff_len:
                rows.append(cur)
                cur = {"input_ids": [], "labels": [], "position_ids": []}
                pos = 0  # a continued document restarts its positions in the next block
    if len(cur["input_ids"]) > 1:
        rows.append(cur)
    return rows
