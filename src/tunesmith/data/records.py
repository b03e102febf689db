"""Canonical in-memory records that every data format is converted into.

Downstream code (templates, tokenization, checks, trainers) only sees these shapes, so a new file
format needs only a reader and a converter, never changes further down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass
class Message:
    """One turn of a conversation."""

    role: Role
    content: str
    reasoning: str | None = None  # an assistant turn's thinking (the data's `reasoning` / `reasoning_content`)


@dataclass
class Origin:
    """Where a record came from, for error messages and reports."""

    file: str
    line: int  # 1-based line (JSONL/CSV/TXT) or record index (JSON array, Parquet)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class SFTExample:
    """Instruction / conversation data: messages alternate user/assistant and end with assistant."""

    messages: list[Message]
    system: str | None = None
    origin: Origin | None = None
    kind: Literal["sft"] = "sft"
    # Media paths in the order their <image> / <video> placeholders appear (resolved by data.media).
    images: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)

    @property
    def prompt_messages(self) -> list[Message]:
        """Everything before the last assistant reply."""
        return self.messages[:-1]

    @property
    def response(self) -> str:
        return self.messages[-1].content


@dataclass
class PreferenceExample:
    """A prompt with a preferred (chosen) and a dispreferred (rejected) answer."""

    messages: list[Message]  # the prompt: ends with a user turn
    chosen: str
    rejected: str
    system: str | None = None
    origin: Origin | None = None
    kind: Literal["preference"] = "preference"


@dataclass
class KTOExample:
    """A prompt, one answer, and a thumbs-up/down label."""

    messages: list[Message]  # the prompt: ends with a user turn
    completion: str
    label: bool
    system: str | None = None
    origin: Origin | None = None
    kind: Literal["kto"] = "kto"


@dataclass
class TextExample:
    """Plain text for pre-training."""

    text: str
    origin: Origin | None = None
    kind: Literal["text"] = "text"


Example = SFTExample | PreferenceExample | KTOExample | TextExample


@dataclass
class RawRecord:
    """A record as read from disk, before format conversion."""

    data: dict[str, Any]
    origin: Origin
    extra: dict[str, Any] = field(default_factory=dict)


def to_dict(ex: Example) -> dict[str, Any]:
    """A JSON-friendly dict in tunesmith's canonical (OpenAI-messages-like) shape."""
    if isinstance(ex, TextExample):
        return {"text": ex.text}
    msgs = ([{"role": "system", "content": ex.system}] if ex.system else []) + [
        {"role": m.role, "content": m.content, **({"reasoning_content": m.reasoning} if m.reasoning else {})}
        for m in ex.messages
    ]
    if isinstance(ex, SFTExample):
        media = {k: v for k, v in (("images", ex.images), ("videos", ex.videos)) if v}
        return {"messages": msgs, **media}
    if isinstance(ex, PreferenceExample):
        return {"messages": msgs, "chosen": ex.chosen, "rejected": ex.rejected}
    return {"messages": msgs, "completion": ex.completion, "label": ex.label}
