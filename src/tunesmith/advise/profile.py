"""What the advisor and the estimator know about a run before it starts: the data, measured with the
model's own tokenizer exactly as training will tokenize it, and the step arithmetic of the Trainer.

Nothing here loads model weights: only the tokenizer and config.json.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.config.schema import Config
from tunesmith.data.checks import check_examples
from tunesmith.data.dedupe import example_text, find_duplicates, normalize
from tunesmith.data.overlap import find_overlap
from tunesmith.data.records import Example, SFTExample, TextExample
from tunesmith.data.tokenize import encode_text, pack
from tunesmith.model.load import load_tokenizer
from tunesmith.train.data import encode_sft_rows, load_splits
from tunesmith.train.resolve import resolve_base, resolve_template

_DIGITS = re.compile(r"\d+")


def template_share(examples: list[Example]) -> tuple[float, str, int]:
    """(share, text, distinct) of the most repeated instruction phrasing.

    Two views are measured and the larger share is reported: the instruction line with numbers
    masked (the same instruction written once and reused), and its opening words (a template whose
    slots change, e.g. "根据以下已知内容，……已知内容：xxx。问题：xxx").
    """
    lines = []
    for ex in examples:
        if isinstance(ex, TextExample) or not ex.messages:
            continue
        lines.append(_DIGITS.sub("#", normalize(ex.messages[0].content.split("\n", 1)[0]))[:200])
    if not lines:
        return 0.0, "", 0
    best = (0.0, "", len(set(lines)))
    for view in (lines, [_opening(line) for line in lines]):
        top, count = Counter(v for v in view if v).most_common(1)[0] if any(view) else ("", 0)
        if count / len(lines) > best[0]:
            best = (count / len(lines), top, len(set(lines)))
    return best


def _opening(line: str) -> str:
    """The first 5 words, or the first 10 characters of text without spaces (Chinese)."""
    words = line.split()
    if len(words) >= 5:
        return " ".join(words[:5])
    return line[:10] if len(line) >= 10 else ""


@dataclass
class DataProfile:
    """The training data as the advisor sees it (token counts with the model's tokenizer)."""

    kind: str
    n_train: int
    n_val: int
    n_test: int
    n_rows: int  # rows the optimizer iterates (after dropping empty rows, packing or chunking)
    lengths: list[int]  # tokens per training example before truncation
    tokens_per_epoch: int  # tokens the model reads per epoch (after truncation)
    label_tokens_per_epoch: int
    val_tokens: int
    cutoff_len: int
    over_cutoff: list[tuple[str, int]] = field(default_factory=list)
    exact_duplicates: int = 0
    near_duplicates: int = 0
    duplicate_examples: list[str] = field(default_factory=list)
    top_template: str = ""
    top_template_share: float = 0.0
    distinct_templates: int = 0
    leaks: int = 0
    leak_examples: list[str] = field(default_factory=list)
    model_max_positions: int | None = None
    tokenizer: str = ""
    template: str = ""

    @property
    def max_len(self) -> int:
        return max(self.lengths, default=0)

    @property
    def longest_row(self) -> int:
        """The longest sequence training will see (after truncation)."""
        return min(self.max_len, self.cutoff_len) if self.lengths else 0

    @property
    def mean_len(self) -> float:
        return sum(self.lengths) / len(self.lengths) if self.lengths else 0.0

    @property
    def loss_share(self) -> float:
        return self.label_tokens_per_epoch / max(1, self.tokens_per_epoch)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out.pop("lengths")
        out.update(max_len=self.max_len, mean_len=round(self.mean_len, 1))
        return out


def _origin(ex: Example, i: int) -> str:
    return str(ex.origin) if ex.origin else f"example {i + 1}"


def _token_counts(cfg: Config, train: list[Example], val: list[Example], template: Any, tokenizer: Any,
                  ) -> tuple[int, list[int], int, int, int]:
    """(rows, lengths, tokens, label tokens, val tokens) exactly as training will encode them."""
    cutoff = cfg.data.cutoff_len
    if train and all(isinstance(e, SFTExample) for e in train):
        rows, stats = encode_sft_rows(train, template, tokenizer, cfg)  # type: ignore[arg-type]
        n_rows = len(pack([(r["input_ids"], r["labels"]) for r in rows], cutoff)) if cfg.data.packing else len(rows)
        val_tokens = 0
        if val and all(isinstance(e, SFTExample) for e in val):
            _, vstats = encode_sft_rows(val, template, tokenizer, cfg)  # type: ignore[arg-type]
            val_tokens = vstats.n_tokens
        return n_rows, stats.lengths, stats.n_tokens, stats.n_label_tokens, val_tokens
    if train and all(isinstance(e, TextExample) for e in train):
        lengths = [len(encode_text(e, tokenizer)) for e in train]  # type: ignore[arg-type]
        total = sum(lengths)
        return max(1, math.ceil(total / cutoff)), lengths, total, total, 0
    report = check_examples("train", train, template, tokenizer, cutoff)
    tokens = sum(min(n, cutoff) for n in report.lengths)
    return len(train), report.lengths, tokens, int(tokens * report.loss_share), 0


def model_max_positions(model_path: str) -> int | None:
    path = Path(model_path) / "config.json"
    if not path.exists():
        return None
    value = json.loads(path.read_text()).get("max_position_embeddings")
    return int(value) if value else None


def build_profile(cfg: Config, *, near_threshold: float = 0.85) -> DataProfile:
    """Read and tokenize the config's datasets (no model weights are loaded)."""
    splits = load_splits(cfg)
    model_path, _ = resolve_base(cfg)
    tokenizer = load_tokenizer(model_path, trust_remote_code=cfg.model.trust_remote_code)
    template = resolve_template(cfg, model_path, tokenizer)
    train = splits.train
    n_rows, lengths, tokens, labels, val_tokens = _token_counts(cfg, train, splits.val, template, tokenizer)
    cutoff = cfg.data.cutoff_len
    profile = DataProfile(
        kind=train[0].kind if train else "empty", n_train=len(train), n_val=len(splits.val),
        n_test=len(splits.test), n_rows=n_rows, lengths=lengths, tokens_per_epoch=tokens,
        label_tokens_per_epoch=labels, val_tokens=val_tokens, cutoff_len=cutoff,
        model_max_positions=model_max_positions(model_path), tokenizer=cfg.model.model_name_or_path,
        template=template.name,
    )
    if profile.kind != "text":  # one pre-training document per "instruction" means nothing
        profile.over_cutoff = [(_origin(e, i), n) for i, (e, n) in enumerate(zip(train, lengths)) if n > cutoff]
        profile.top_template_share, profile.top_template, profile.distinct_templates = template_share(train)
    dupes = find_duplicates([example_text(e) for e in train], threshold=near_threshold)
    profile.exact_duplicates, profile.near_duplicates = dupes.n_exact, dupes.n_near
    profile.duplicate_examples = [
        f"{_origin(train[i], i)} {'=' if kind == 'exact' else '≈'} {_origin(train[g.keep], g.keep)}"
        + ("" if kind == "exact" else f" ({sim:.2f})")
        for g in dupes.groups for i, sim, kind in g.duplicates
    ][:10]
    held_out = splits.val + splits.test
    if held_out and profile.kind != "text":
        leaks = find_overlap(train, held_out, part="prompt")
        profile.leaks = len(leaks.leaks)
        profile.leak_examples = [
            f"{_origin(held_out[x.eval_index], x.eval_index)} {'=' if x.kind == 'exact' else '≈'} "
            f"{_origin(train[x.train_index], x.train_index)}" + ("" if x.kind == "exact" else f" ({x.similarity:.2f})")
            for x in leaks.leaks
        ][:10]
    return profile
