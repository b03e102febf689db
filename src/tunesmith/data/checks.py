"""Dataset checks before training: lengths, loss share, truncation, duplicates, instruction diversity.

The notes' quality rules made measurable: nothing silently truncated (cutoff_len), and varied
instructions (one phrasing repeated everywhere teaches the model the phrase instead of the task).
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tunesmith.data.records import Example, KTOExample, PreferenceExample, SFTExample, TextExample
from tunesmith.data.templates import Template, split_reasoning
from tunesmith.data.tokenize import IGNORE_INDEX, EncodeStats, encode_segments, encode_sft, encode_text


def example_key(ex: Example) -> str:
    """A string identifying an example's content (for duplicate detection)."""
    if isinstance(ex, TextExample):
        return ex.text.strip()
    msgs = "\x1e".join(f"{m.role}:{m.content.strip()}" for m in ex.messages)
    if isinstance(ex, PreferenceExample):
        return f"{ex.system}\x1f{msgs}\x1f{ex.chosen}\x1f{ex.rejected}"
    if isinstance(ex, KTOExample):
        return f"{ex.system}\x1f{msgs}\x1f{ex.completion}\x1f{ex.label}"
    return f"{ex.system}\x1f{msgs}"


def first_instruction(ex: Example) -> str:
    """The first line of the first user turn: the 'instruction phrasing' of an example."""
    if isinstance(ex, TextExample) or not ex.messages:
        return ""
    return ex.messages[0].content.strip().split("\n", 1)[0][:200]


@dataclass
class SplitReport:
    """Statistics of one file / split."""

    name: str
    kind: str
    n: int
    lengths: list[int] = field(default_factory=list)
    loss_share: float = 0.0
    n_over_cutoff: int = 0
    over_cutoff: list[str] = field(default_factory=list)
    n_duplicates: int = 0
    top_instruction_share: float = 0.0
    top_instruction: str = ""
    distinct_instructions: int = 0
    n_reasoning: int = 0  # examples whose replies carry reasoning (<think> blocks or a reasoning field)
    media: dict[str, int] | None = None  # vision models: records with media, images, videos, vision tokens

    def length_summary(self) -> dict[str, float]:
        if not self.lengths:
            return {}
        s = sorted(self.lengths)
        return {"min": s[0], "mean": round(statistics.fmean(s), 1), "p50": s[len(s) // 2],
                "p95": s[min(len(s) - 1, int(0.95 * len(s)))], "max": s[-1]}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "format": self.kind, "examples": self.n, "tokens": self.length_summary(),
                "loss_token_share": round(self.loss_share, 4), "over_cutoff_len": self.n_over_cutoff,
                "over_cutoff_examples": self.over_cutoff[:10], "duplicates": self.n_duplicates,
                "distinct_instructions": self.distinct_instructions,
                "top_instruction_share": round(self.top_instruction_share, 4), "top_instruction": self.top_instruction,
                "with_reasoning": self.n_reasoning, **({"media": self.media} if self.media is not None else {})}


def _pair_ids(ex: Example, template: Template, tokenizer: Any) -> tuple[list[int], list[int]]:
    """Tokens and labels for any kind of example (preference: chosen answer; kto: the answer)."""
    if isinstance(ex, TextExample):
        ids = encode_text(ex, tokenizer)
        return ids, ids
    if isinstance(ex, SFTExample):
        msgs = ex.messages
    else:
        from tunesmith.data.records import Message

        answer = ex.chosen if isinstance(ex, PreferenceExample) else ex.completion
        msgs = [*ex.messages, Message("assistant", answer)]
    segs = template.segments(msgs, ex.system, tokenizer.bos_token, tokenizer.eos_token)
    return encode_segments(tokenizer, segs, whole=hasattr(template, "source"))


def has_reasoning(ex: Example) -> bool:
    """Does any reply carry reasoning (a reasoning field or a <think>...</think> block)?"""
    if not isinstance(ex, SFTExample):
        return False
    return any(m.role == "assistant" and split_reasoning(m)[0] is not None for m in ex.messages)


def reasoning_note(template: Any, n_reasoning: int, n: int) -> str | None:
    """How the template trains the reasoning in the data (None when there is none)."""
    if not n_reasoning:
        return None
    head = f"{n_reasoning} of {n} examples carry reasoning"
    thinking = getattr(template, "thinking", None)
    if thinking is not None:
        return (f"{head}: '{template.name}' trains it in the last reply as {thinking.block.strip()!r} before the "
                "answer; earlier turns' reasoning is dropped, as the family's own template does")
    if hasattr(template, "source"):
        return f"{head}: the model's own template decides how it is written (see the rendered example)"
    return (f"{head}: '{template.name}' has no thinking format, so it is trained inline as "
            "<think>...</think> before the answer; use a reasoning template (qwen3, deepseek-r1) for such models")


def check_examples(name: str, examples: list[Example], template: Template, tokenizer: Any,
                   cutoff_len: int) -> SplitReport:
    """Measure one split with the model's tokenizer."""
    kind = examples[0].kind if examples else "empty"
    report = SplitReport(name, kind, len(examples))
    stats = EncodeStats()
    for ex in examples:
        ids, labels = _pair_ids(ex, template, tokenizer)
        report.n_reasoning += has_reasoning(ex)
        report.lengths.append(len(ids))
        stats.n_tokens += len(ids)
        stats.n_label_tokens += sum(1 for x in labels if x != IGNORE_INDEX)
        if len(ids) > cutoff_len:
            report.n_over_cutoff += 1
            report.over_cutoff.append(f"{ex.origin} ({len(ids)} tokens)")
    report.loss_share = stats.loss_share
    keys = Counter(example_key(e) for e in examples)
    report.n_duplicates = sum(c - 1 for c in keys.values() if c > 1)
    instr = Counter(first_instruction(e) for e in examples if first_instruction(e))
    if instr:
        top, count = instr.most_common(1)[0]
        report.top_instruction, report.top_instruction_share = top, count / len(examples)
        report.distinct_instructions = len(instr)
    return report


def render_marked(example: SFTExample, template: Template, tokenizer: Any, cutoff_len: int = 10**9,
                  ) -> list[tuple[str, bool]]:
    """The example as the model sees it, as (text, carries_loss) pieces token by token."""
    enc, _ = encode_sft(example, template, tokenizer, cutoff_len)
    pieces: list[tuple[str, bool]] = []
    for tok_id, label in zip(enc.input_ids, enc.labels):
        text = tokenizer.decode([tok_id], skip_special_tokens=False)
        trained = label != IGNORE_INDEX
        if pieces and pieces[-1][1] == trained:
            pieces[-1] = (pieces[-1][0] + text, trained)
        else:
            pieces.append((text, trained))
    return pieces


def model_positions(model_config: dict[str, Any]) -> int | None:
    """How many positions the model was trained for (its config's max_position_embeddings), scaled by
    a rope_scaling factor when one is set."""
    cfg = model_config.get("text_config", model_config)
    n = cfg.get("max_position_embeddings")
    if not isinstance(n, int):
        return None
    scaling = cfg.get("rope_scaling") or {}
    factor = scaling.get("factor") if isinstance(scaling, dict) else None
    original = scaling.get("original_max_position_embeddings") if isinstance(scaling, dict) else None
    return int((original or n) * factor) if isinstance(factor, (int, float)) and factor > 1 else n


def position_warning(cutoff_len: int, model_config: dict[str, Any], rope_scaling: str | None = None) -> str | None:
    """A warning when cutoff_len exceeds the positions the model knows (None when it fits)."""
    n = model_positions(model_config)
    if n is None or cutoff_len <= n or rope_scaling:
        return None
    factor = -(-cutoff_len // n)
    return (f"cutoff_len={cutoff_len} exceeds the model's {n} positions (max_position_embeddings): tokens past "
            f"{n} get positions the model never saw. Set rope_scaling: linear (or dynamic / yarn), which scales "
            f"positions by ceil({cutoff_len}/{n}) = {factor}, or lower cutoff_len to {n}.")
