"""Convert datasets between the shapes the README lists, wherever the mapping is defined.

Within a kind the conversion is lossless (the canonical examples read back identical):

- SFT: ``alpaca`` (instruction / input / output, history, system), ``sharegpt`` (conversations with
  from / value), ``messages`` (OpenAI role / content)
- preference: ``preference`` (messages + chosen / rejected, multi-turn), ``preference-qa`` (the notes'
  question / positive_answer / negative_answer, single-turn)
- KTO: ``kto`` (instruction / input / output / kto_tag, with history and system)

Across kinds only what is well defined: preference -> SFT (the chosen answer), preference -> KTO (one
desirable and one undesirable item per pair), KTO -> SFT (desirable items only), KTO -> preference
(a desirable and an undesirable answer to the same prompt become a pair). SFT data has no rejected
answer and no label, so SFT -> preference / KTO is refused with a hint.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tunesmith.data.records import Example, KTOExample, Message, PreferenceExample, SFTExample, TextExample
from tunesmith.utils.errors import DataFormatError

SFT_TARGETS = ("alpaca", "sharegpt", "messages")
TARGETS = (*SFT_TARGETS, "preference", "preference-qa", "kto")
_SHAREGPT_ROLE = {"user": "human", "assistant": "gpt", "tool": "observation"}


@dataclass
class Conversion:
    """Rows in the target shape and notes on anything dropped or split."""

    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def _where(ex: Example) -> str:
    return str(ex.origin) if ex.origin else "an example"


def _split_prompt(content: str) -> tuple[str, str]:
    """Alpaca joins instruction and input with a newline; split the same way (round trips exactly)."""
    instruction, _, query = content.partition("\n")
    return instruction, query


def _alpaca_prompt(ex: Example, messages: list[Message]) -> dict[str, Any]:
    """instruction / input / history / system for a prompt that ends with a user turn."""
    if any(m.role == "tool" for m in messages):
        raise DataFormatError(f"{_where(ex)}: tool turns have no place in the Alpaca shape",
                              hint="convert to 'sharegpt' or 'messages' instead")
    *earlier, last = messages
    instruction, query = _split_prompt(last.content)
    row: dict[str, Any] = {"instruction": instruction, "input": query}
    if earlier:
        row["history"] = [[earlier[i].content, earlier[i + 1].content] for i in range(0, len(earlier), 2)]
    if ex.system:
        row["system"] = ex.system
    return row


def sft_row(ex: SFTExample, target: str) -> dict[str, Any]:
    """One SFT example in an SFT shape."""
    if target == "alpaca":
        return {**_alpaca_prompt(ex, ex.messages[:-1]), "output": ex.response}
    if target == "sharegpt":
        row: dict[str, Any] = {"conversations": [{"from": _SHAREGPT_ROLE[m.role], "value": m.content}
                                                 for m in ex.messages]}
        if ex.system:
            row["system"] = ex.system
        return row
    system = [{"role": "system", "content": ex.system}] if ex.system else []
    return {"messages": system + [{"role": m.role, "content": m.content} for m in ex.messages]}


def preference_row(ex: PreferenceExample, target: str) -> dict[str, Any]:
    """One preference pair in a preference shape."""
    if target == "preference-qa":
        if len(ex.messages) != 1:
            raise DataFormatError(f"{_where(ex)}: the question / positive_answer / negative_answer shape holds one "
                                  "turn, this pair has a conversation", hint="convert to 'preference' instead")
        row: dict[str, Any] = {"question": ex.messages[0].content, "positive_answer": ex.chosen,
                               "negative_answer": ex.rejected}
        if ex.system:
            row["system"] = ex.system
        return row
    system = [{"role": "system", "content": ex.system}] if ex.system else []
    return {"messages": system + [{"role": m.role, "content": m.content} for m in ex.messages],
            "chosen": ex.chosen, "rejected": ex.rejected}


def kto_row(ex: KTOExample) -> dict[str, Any]:
    """One KTO item in the Alpaca-style KTO shape."""
    return {**_alpaca_prompt(ex, ex.messages), "output": ex.completion, "kto_tag": ex.label}


def _prompt_key(ex: Example) -> tuple:
    return (ex.system, tuple((m.role, m.content) for m in ex.messages))  # type: ignore[union-attr]


def _to_kind(examples: list[Example], target: str) -> tuple[list[Example], list[str]]:
    """Change the kind of the examples when the target needs another kind (and that is defined)."""
    kind = examples[0].kind
    want = "sft" if target in SFT_TARGETS else ("kto" if target == "kto" else "preference")
    if kind == want:
        return examples, []
    if kind == "text":
        raise DataFormatError("plain-text (pre-training) data has no prompts or answers to convert",
                              hint="text data trains with stage: pt as it is")
    if kind == "sft":
        raise DataFormatError(
            f"SFT data cannot become {want} data: it has no {'rejected answer' if want == 'preference' else 'label'}",
            hint="write the rejected answers (or kto_tag labels) first; 'tunesmith data augment --judge' makes "
            "true/false judgement items for SFT instead",
        )
    if kind == "preference" and want == "sft":
        out = [SFTExample([*e.messages, Message("assistant", e.chosen)], e.system, e.origin)
               for e in examples if isinstance(e, PreferenceExample)]
        return out, [f"{len(out)} rejected answers dropped (SFT keeps the chosen answer)"]
    if kind == "preference" and want == "kto":
        out_kto: list[Example] = []
        for e in examples:
            if isinstance(e, PreferenceExample):
                out_kto += [KTOExample(list(e.messages), e.chosen, True, e.system, e.origin),
                            KTOExample(list(e.messages), e.rejected, False, e.system, e.origin)]
        return out_kto, [f"{len(examples)} pairs became {len(out_kto)} KTO items (chosen: true, rejected: false)"]
    if kind == "kto" and want == "sft":
        good = [SFTExample([*e.messages, Message("assistant", e.completion)], e.system, e.origin)
                for e in examples if isinstance(e, KTOExample) and e.label]
        return good, [f"{len(examples) - len(good)} undesirable (kto_tag false) items dropped"]
    return _kto_to_pairs(examples)


def _kto_to_pairs(examples: list[Example]) -> tuple[list[Example], list[str]]:
    """Pair desirable and undesirable answers to the same prompt, in file order."""
    good: dict[tuple, list[KTOExample]] = defaultdict(list)
    bad: dict[tuple, list[KTOExample]] = defaultdict(list)
    for e in examples:
        if isinstance(e, KTOExample):
            (good if e.label else bad)[_prompt_key(e)].append(e)
    pairs: list[Example] = []
    for key, goods in good.items():
        for g, b in zip(goods, bad.get(key, [])):
            if g.completion.strip() != b.completion.strip():
                pairs.append(PreferenceExample(list(g.messages), g.completion, b.completion, g.system, g.origin))
    unpaired = len(examples) - 2 * len(pairs)
    notes = [f"{len(pairs)} pairs from prompts with both a true and a false answer"]
    if unpaired:
        notes.append(f"{unpaired} items without a partner of the other label dropped")
    return pairs, notes


def convert_examples(examples: list[Example], target: str) -> Conversion:
    """Rows of ``examples`` in the ``target`` shape (see the module docstring)."""
    if target not in TARGETS:
        raise DataFormatError(f"unknown target shape {target!r}", hint=f"use one of {', '.join(TARGETS)}")
    if not examples:
        return Conversion([])
    converted, notes = _to_kind(examples, target)
    rows: list[dict[str, Any]] = []
    for ex in converted:
        if isinstance(ex, SFTExample):
            rows.append(sft_row(ex, target))
        elif isinstance(ex, PreferenceExample):
            rows.append(preference_row(ex, target))
        elif isinstance(ex, KTOExample):
            rows.append(kto_row(ex))
        elif isinstance(ex, TextExample):  # pragma: no cover - refused in _to_kind
            rows.append({"text": ex.text})
    return Conversion(rows, notes)


def source_shape(record: dict[str, Any], kind: str) -> str:
    """The shape name (as accepted by convert_examples) closest to a raw record of the given kind."""
    if kind == "sft":
        if "messages" in record:
            return "messages"
        return "sharegpt" if "conversations" in record else "alpaca"
    if kind == "preference":
        return "preference-qa" if "question" in record else "preference"
    return kind
