"""Data formats: detect the shape of raw records and convert them to canonical examples.

Supported shapes (names and column mapping as in LLaMA-Factory's ``dataset_info.json``):

- ``alpaca``: ``instruction``, ``input``, ``output``, optional ``system`` and ``history``
- ``sharegpt``: ``conversations`` as ``[{"from": "human"|"gpt"|"system", "value": ...}]``
- ``openai``: ``messages`` as ``[{"role": "user"|"assistant"|"system", "content": ...}]``
- preference: ``question/positive_answer/negative_answer`` (the notes' shape), ``prompt/chosen/rejected``,
  ``instruction/input/chosen/rejected``, or conversations plus ``chosen``/``rejected``
- ``kto``: ``instruction``, ``output``, ``kto_tag`` (true/false)
- ``text``: ``text`` (pre-training)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tunesmith.data.records import (
    Example,
    KTOExample,
    Message,
    Origin,
    PreferenceExample,
    RawRecord,
    SFTExample,
    TextExample,
)
from tunesmith.utils.errors import DataFormatError

FORMATS = ("alpaca", "sharegpt", "openai", "preference", "kto", "text")


@dataclass
class Columns:
    """Column names in the user's files (LLaMA-Factory's ``columns`` and ``tags`` entries)."""

    prompt: str = "instruction"
    query: str = "input"
    response: str = "output"
    history: str = "history"
    system: str = "system"
    messages: str = "conversations"
    chosen: str = "chosen"
    rejected: str = "rejected"
    kto_tag: str = "kto_tag"
    text: str = "text"
    images: str = "images"
    videos: str = "videos"
    role_tag: str = "from"
    content_tag: str = "value"
    user_tag: str = "human"
    assistant_tag: str = "gpt"
    system_tag: str = "system"
    observation_tag: str = "observation"
    function_tag: str = "function_call"
    explicit: set[str] = field(default_factory=set)

    @classmethod
    def from_registry(cls, columns: dict[str, str] | None, tags: dict[str, str] | None) -> Columns:
        c = cls()
        for key, value in {**(columns or {}), **(tags or {})}.items():
            if hasattr(c, key) and key != "explicit":
                setattr(c, key, value)
                c.explicit.add(key)
        return c


def _fail(origin: Origin, msg: str, hint: str | None = None) -> DataFormatError:
    return DataFormatError(f"{origin}: {msg}", hint=hint)


def _text(rec: RawRecord, key: str, *, required: bool = True, allow_empty: bool = False) -> str:
    value = rec.data.get(key)
    if value is None or (isinstance(value, float) and value != value):  # missing or NaN (CSV/Parquet)
        if required:
            present = ", ".join(sorted(rec.data)) or "none"
            raise _fail(rec.origin, f"missing field '{key}' (fields present: {present})",
                        "add the field, or map your column name in dataset_info.json 'columns'")
        return ""
    if not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        else:
            raise _fail(rec.origin, f"field '{key}' must be a string, got {type(value).__name__}: {value!r:.60}")
    if required and not allow_empty and not value.strip():
        raise _fail(rec.origin, f"field '{key}' is empty", "remove the record or fill in the text")
    return value


def detect_format(data: dict[str, Any]) -> str:
    """Guess the format of one record from its keys."""
    keys = set(data)
    if {"positive_answer", "negative_answer"} & keys:  # the notes' shape (a missing half is reported later)
        return "preference"
    if "kto_tag" in keys or ("label" in keys and "completion" in keys):
        return "kto"
    if "chosen" in keys and "rejected" in keys:
        return "preference"
    if "messages" in keys:
        return "openai"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys or ("prompt" in keys and ({"response", "completion", "output"} & keys)):
        return "alpaca"
    if "text" in keys:
        return "text"
    raise ValueError(f"cannot tell the format from fields {sorted(keys)}")


_ROLE_ALIASES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
    "bot": "assistant", "system": "system", "observation": "tool", "tool": "tool", "function": "tool",
    "function_call": "assistant",
}


def _messages(rec: RawRecord, key: str, cols: Columns) -> tuple[list[Message], str | None]:
    """Parse a ShareGPT/OpenAI message list; returns (messages without system, system)."""
    raw = rec.data.get(key)
    if not isinstance(raw, list) or not raw:
        got = "missing" if raw is None else f"{type(raw).__name__}"
        raise _fail(rec.origin, f"field '{key}' must be a non-empty list of turns ({got})")
    role_key, content_key = cols.role_tag, cols.content_tag
    if isinstance(raw[0], dict) and "role" in raw[0] and role_key not in raw[0]:
        role_key, content_key = "role", "content"
    tag_map = {cols.user_tag: "user", cols.assistant_tag: "assistant", cols.system_tag: "system",
               cols.observation_tag: "tool", cols.function_tag: "assistant"}
    msgs: list[Message] = []
    system = None
    for i, turn in enumerate(raw):
        if not isinstance(turn, dict):
            raise _fail(rec.origin, f"{key}[{i}] must be an object with '{role_key}' and '{content_key}'")
        role_raw, content = turn.get(role_key), turn.get(content_key)
        role = tag_map.get(role_raw) or _ROLE_ALIASES.get(str(role_raw).lower())
        if role is None:
            raise _fail(rec.origin, f"{key}[{i}].{role_key}: unknown role {role_raw!r}",
                        f"use {cols.user_tag!r}/{cols.assistant_tag!r} (or map them in dataset_info.json 'tags')")
        if not isinstance(content, str):
            raise _fail(rec.origin, f"{key}[{i}].{content_key} must be a string, got {type(content).__name__}")
        if role == "system":
            if i != 0:
                raise _fail(rec.origin, f"{key}[{i}]: a system message may only come first")
            system = content
            continue
        reasoning = _reasoning(rec, turn, f"{key}[{i}]") if role == "assistant" else None
        msgs.append(Message(role, content, reasoning))  # type: ignore[arg-type]
    if cols.system in rec.data and isinstance(rec.data[cols.system], str) and rec.data[cols.system]:
        system = rec.data[cols.system]
    return msgs, system


REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")


def _reasoning(rec: RawRecord, obj: dict[str, Any], where: str) -> str | None:
    """An assistant turn's separate reasoning field (None when it has none)."""
    key = next((k for k in REASONING_KEYS if obj.get(k) is not None), None)
    if key is None:
        return None
    if not isinstance(obj[key], str):
        raise _fail(rec.origin, f"{where}.{key} must be a string, got {type(obj[key]).__name__}")
    return obj[key]


def _check_turns(rec: RawRecord, msgs: list[Message], *, end_with: str) -> None:
    expected = "user"
    for i, m in enumerate(msgs):
        role = "user" if m.role == "tool" else m.role
        if role != expected:
            raise _fail(rec.origin, f"turn {i + 1} is '{m.role}' but '{expected}' was expected "
                        "(turns must alternate user/assistant)")
        expected = "assistant" if expected == "user" else "user"
    if not msgs or msgs[-1].role != end_with and not (end_with == "user" and msgs[-1].role == "tool"):
        raise _fail(rec.origin, f"the conversation must end with a '{end_with}' turn")


def _alpaca_prompt(rec: RawRecord, cols: Columns) -> tuple[list[Message], str | None]:
    prompt_key = cols.prompt if cols.prompt in rec.data or "prompt" not in rec.data else "prompt"
    if prompt_key not in rec.data and "question" in rec.data:
        prompt_key = "question"
    instruction = _text(rec, prompt_key)
    query = _text(rec, cols.query, required=False)
    content = f"{instruction}\n{query}" if query.strip() else instruction
    msgs: list[Message] = []
    history = rec.data.get(cols.history)
    if history:
        if not isinstance(history, list):
            raise _fail(rec.origin, f"field '{cols.history}' must be a list of [question, answer] pairs")
        for i, pair in enumerate(history):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                raise _fail(rec.origin, f"{cols.history}[{i}] must be a [question, answer] pair of strings")
            msgs += [Message("user", pair[0]), Message("assistant", pair[1])]
    msgs.append(Message("user", content))
    system = _text(rec, cols.system, required=False) or None
    return msgs, system


def _media(rec: RawRecord, keys: tuple[str, ...]) -> list[str]:
    """Media paths under the first present key: LLaMA-Factory's ``images`` / ``videos`` lists or
    Qwen2-VL-Finetune's ``image`` / ``video`` (one path or a list)."""
    key = next((k for k in keys if rec.data.get(k) not in (None, "", [])), None)
    if key is None:
        return []
    value = rec.data[key]
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(x, str) and x.strip() for x in items):
        raise _fail(rec.origin, f"field '{key}' must be a path or a list of paths, got {value!r:.80}",
                    'write "' + key + '": ["pictures/a.jpg"] (relative to media_dir or the dataset file)')
    return list(items)


def _with_media(ex: SFTExample, rec: RawRecord, cols: Columns) -> SFTExample:
    ex.images = _media(rec, (cols.images, "image"))
    ex.videos = _media(rec, (cols.videos, "video"))
    return ex


def convert_alpaca(rec: RawRecord, cols: Columns) -> SFTExample:
    msgs, system = _alpaca_prompt(rec, cols)
    resp_key = next((k for k in (cols.response, "response", "completion") if k in rec.data), cols.response)
    msgs.append(Message("assistant", _text(rec, resp_key), _reasoning(rec, rec.data, "record")))
    return _with_media(SFTExample(msgs, system, rec.origin), rec, cols)


def convert_conversation(rec: RawRecord, cols: Columns, key: str) -> SFTExample:
    msgs, system = _messages(rec, key, cols)
    _check_turns(rec, msgs, end_with="assistant")
    for i, m in enumerate(msgs):
        if m.role == "assistant" and not m.content.strip():
            raise _fail(rec.origin, f"turn {i + 1}: the assistant reply is empty")
    return _with_media(SFTExample(msgs, system, rec.origin), rec, cols)


def _answer(rec: RawRecord, key: str, cols: Columns) -> str:
    value = rec.data.get(key)
    if isinstance(value, dict):  # ShareGPT preference: {"from": "gpt", "value": "..."}
        value = value.get(cols.content_tag, value.get("content"))
    elif isinstance(value, list) and value and isinstance(value[-1], dict):  # OpenAI: [{"role":..,"content":..}]
        value = value[-1].get("content", value[-1].get(cols.content_tag))
    return _text(RawRecord({key: value}, rec.origin), key)


def convert_preference(rec: RawRecord, cols: Columns) -> PreferenceExample:
    d = rec.data
    if "positive_answer" in d or "negative_answer" in d:
        msgs, system = [Message("user", _text(rec, "question"))], _text(rec, cols.system, required=False) or None
        chosen, rejected = _text(rec, "positive_answer"), _text(rec, "negative_answer")
    else:
        conv_key = next((k for k in (cols.messages, "conversations", "messages") if k in d), None)
        if conv_key is not None and isinstance(d[conv_key], list):
            msgs, system = _messages(rec, conv_key, cols)
            _check_turns(rec, msgs, end_with="user")
        else:
            msgs, system = _alpaca_prompt(rec, cols)
        chosen, rejected = _answer(rec, cols.chosen, cols), _answer(rec, cols.rejected, cols)
    if chosen.strip() == rejected.strip():
        raise _fail(rec.origin, "the chosen and rejected answers are identical: the pair teaches nothing",
                    "remove the record or write a worse 'rejected' answer")
    return PreferenceExample(msgs, chosen, rejected, system, rec.origin)


_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


def convert_kto(rec: RawRecord, cols: Columns) -> KTOExample:
    tag_key = cols.kto_tag if cols.kto_tag in rec.data else "label"
    if tag_key not in rec.data:
        raise _fail(rec.origin, f"missing field '{cols.kto_tag}' (true for a good answer, false for a bad one)")
    tag = rec.data[tag_key]
    if isinstance(tag, str) and tag.strip().lower() in _TRUE | _FALSE:
        tag = tag.strip().lower() in _TRUE
    if not isinstance(tag, bool):
        raise _fail(rec.origin, f"field '{tag_key}' must be true or false, got {tag!r}")
    resp_key = cols.response if cols.response in rec.data else "completion"
    conv_key = next((k for k in (cols.messages, "conversations", "messages")
                     if isinstance(rec.data.get(k), list)), None)
    if conv_key is not None:  # ShareGPT / messages, or tunesmith's own {"messages", "completion", "label"}
        msgs, system = _messages(rec, conv_key, cols)
        if msgs and msgs[-1].role == "assistant" and resp_key not in rec.data:
            completion = msgs.pop().content
        else:
            completion = _text(rec, resp_key)
        _check_turns(rec, msgs, end_with="user")
    else:
        msgs, system = _alpaca_prompt(rec, cols)
        completion = _text(rec, resp_key)
    return KTOExample(msgs, completion, tag, system, rec.origin)


def convert_text(rec: RawRecord, cols: Columns) -> TextExample:
    key = cols.text if cols.text in rec.data else cols.prompt
    return TextExample(_text(rec, key), rec.origin)


CONVERTERS: dict[str, Callable[[RawRecord, Columns], Example]] = {
    "alpaca": convert_alpaca,
    "sharegpt": lambda r, c: convert_conversation(r, c, c.messages if c.messages in r.data else "conversations"),
    "openai": lambda r, c: convert_conversation(r, c, "messages" if "messages" in r.data else c.messages),
    "preference": convert_preference,
    "kto": convert_kto,
    "text": convert_text,
}


def resolve_format(rec: RawRecord, formatting: str | None, ranking: bool, cols: Columns) -> str:
    """Pick the converter for a record from the registry entry (if any) and its fields."""
    if formatting in (None, "auto"):
        try:
            fmt = detect_format(rec.data)
        except ValueError as exc:
            raise _fail(rec.origin, str(exc), "use one of the formats in the README (alpaca, sharegpt, "
                        "messages, preference, kto, text) or map columns in dataset_info.json") from None
    else:
        fmt = formatting
        if fmt not in CONVERTERS:
            raise DataFormatError(f"unknown formatting {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    if ranking and fmt in ("alpaca", "sharegpt", "openai"):
        return "preference"
    if fmt in ("alpaca", "sharegpt", "openai") and (cols.kto_tag in rec.data or "kto_tag" in cols.explicit):
        return "kto"
    if fmt == "alpaca" and "text" in cols.explicit:
        return "text"
    return fmt


def convert_records(
    records: list[RawRecord], *, formatting: str | None = None, ranking: bool = False, columns: Columns | None = None
) -> list[Example]:
    """Convert raw records; all records of one file must share one format."""
    cols = columns or Columns()
    out: list[Example] = []
    first_fmt = None
    for rec in records:
        fmt = resolve_format(rec, formatting, ranking, cols)
        if first_fmt is None:
            first_fmt = fmt
        elif first_fmt == "kto" and fmt != "kto":
            raise _fail(rec.origin, f"missing field '{cols.kto_tag}' (earlier records carry it; true for a good "
                        "answer, false for a bad one)", "add the tag to this record or remove the record")
        elif fmt != first_fmt and formatting in (None, "auto"):
            raise _fail(rec.origin, f"record looks like '{fmt}' but earlier records are '{first_fmt}'",
                        "keep one format per file")
        out.append(CONVERTERS[fmt](rec, cols))
    return out
