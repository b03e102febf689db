"""Preference, KTO and prompt-only records in the shapes the TRL trainers read, and the reward-model
encoding.

TRL's DPO, KTO, ORPO, SimPO and GRPO trainers read *conversational* records (lists of
``{"role", "content"}`` turns) and render them with the tokenizer's ``chat_template``; training sets that
template to the Jinja equivalent of tunesmith's own (``templates.to_jinja``), so every stage sees the
exact text SFT trains on and chat uses. The reward model is tokenized here, segment by segment, the
same way SFT is.
"""

from __future__ import annotations

from typing import Any

from tunesmith.data.records import KTOExample, Message, PreferenceExample, SFTExample
from tunesmith.data.templates import Template
from tunesmith.data.tokenize import encode_sft


def prompt_turns(messages: list[Message], system: str | None) -> list[dict[str, str]]:
    """A prompt as TRL's conversational turns (system first, when there is one)."""
    turns = [{"role": "system", "content": system}] if system else []
    return turns + [{"role": m.role, "content": m.content} for m in messages]


def _reply(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def preference_record(ex: PreferenceExample) -> dict[str, Any]:
    """``{"prompt", "chosen", "rejected"}`` in TRL's conversational preference shape."""
    return {"prompt": prompt_turns(ex.messages, ex.system), "chosen": _reply(ex.chosen),
            "rejected": _reply(ex.rejected)}


def kto_record(ex: KTOExample) -> dict[str, Any]:
    """``{"prompt", "completion", "label"}`` in TRL's conversational unpaired-preference shape."""
    return {"prompt": prompt_turns(ex.messages, ex.system), "completion": _reply(ex.completion),
            "label": bool(ex.label)}


def prompt_record(ex: SFTExample) -> dict[str, Any]:
    """GRPO: the conversation up to the last reply as the prompt, that reply as the reference ``answer``."""
    return {"prompt": prompt_turns(ex.prompt_messages, ex.system), "answer": ex.response}


def encode_pair(ex: PreferenceExample, template: Template, tokenizer: Any, cutoff_len: int,
                ) -> tuple[dict[str, list[int]], bool]:
    """Reward-model row ``{"chosen_ids", "rejected_ids"}``: prompt + each answer with the template.

    Long prompts are cut from the left (as in SFT) so both answers survive; returns (row, truncated).
    """
    row: dict[str, list[int]] = {}
    truncated = False
    for key, answer in (("chosen_ids", ex.chosen), ("rejected_ids", ex.rejected)):
        convo = SFTExample([*ex.messages, Message("assistant", answer)], ex.system, ex.origin)
        enc, _ = encode_sft(convo, template, tokenizer, cutoff_len)
        row[key] = enc.input_ids
        truncated = truncated or enc.truncated
    return row, truncated
