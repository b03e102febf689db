"""Turn a config's datasets into tokenized train / validation rows and a held-out test set.

Everything here runs before the model loads and before anything is written to output_dir, so a
data error costs seconds and leaves no half-made run behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunesmith.config.schema import Config
from tunesmith.data.checks import example_key
from tunesmith.data.records import Example, SFTExample, TextExample
from tunesmith.data.registry import load_examples
from tunesmith.data.split import split_items
from tunesmith.data.templates import Template
from tunesmith.data.tokenize import EncodeStats, chunk_text, encode_sft, encode_text, pack
from tunesmith.utils.console import console
from tunesmith.utils.errors import DataFormatError, TrainingError


@dataclass
class Splits:
    """Canonical examples per split."""

    train: list[Example]
    val: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)


def _load_many(names: list[str], cfg: Config) -> list[Example]:
    out: list[Example] = []
    for name in names:
        examples = load_examples(name, cfg.data.dataset_dir, cfg.data.max_samples)
        _refuse_all_duplicates(name, examples)
        out += examples
    return out


def _refuse_all_duplicates(name: str, examples: list[Example]) -> None:
    """One example repeated N times teaches one answer; it is almost always a broken export."""
    if len(examples) > 1 and len({example_key(e) for e in examples}) == 1:
        raise DataFormatError(
            f"dataset '{name}': all {len(examples)} examples are the same one (first at {examples[0].origin})",
            hint="check how the file was made; 'tunesmith data dedupe' removes repeats",
        )


def _count(size: float, n: int) -> int:
    return int(size) if size >= 1 else int(round(size * n))


def load_splits(cfg: Config) -> Splits:
    """Read dataset / eval_dataset / test_dataset; carve val_size / test_size out of train if asked."""
    d = cfg.data
    train = _load_many(d.dataset, cfg)
    val = _load_many(d.eval_dataset, cfg)
    test = _load_many(d.test_dataset, cfg)
    n_val = _count(d.val_size, len(train)) if not val else 0
    n_test = _count(d.test_size, len(train)) if not test else 0
    if n_val or n_test:
        if n_val + n_test >= len(train):
            raise DataFormatError(f"val_size/test_size take {n_val + n_test} of {len(train)} examples; "
                                  "nothing would be left to train on")
        n = len(train)
        parts = split_items(train, ((n - n_val - n_test) / n, n_val / n, n_test / n), seed=cfg.train.seed)
        train, val_part, test_part = parts
        val = val or val_part
        test = test or test_part
    return Splits(train, val, test)


def _examples_of(kind: str, examples: list[Example], stage: str) -> list[Any]:
    wrong = [e for e in examples if e.kind != kind]
    if wrong:
        origin = getattr(wrong[0], "origin", None)
        raise DataFormatError(
            f"stage '{stage}' needs {kind} data, but {len(wrong)} record(s) are '{wrong[0].kind}' "
            f"(first at {origin})",
            hint="pick the stage that matches the data (sft: instructions/conversations; dpo/rm/orpo/simpo: "
            "chosen/rejected pairs; kto: kto_tag; pt: text)",
        )
    return examples


def encode_sft_rows(examples: list[SFTExample], template: Template, tokenizer: Any, cfg: Config,
                    ) -> tuple[list[dict[str, list[int]]], EncodeStats]:
    """Tokenize SFT examples; drops (and reports) examples left with no trained token."""
    stats = EncodeStats()
    rows = []
    for ex in examples:
        enc, full = encode_sft(ex, template, tokenizer, cfg.data.cutoff_len,
                               train_on_prompt=cfg.data.train_on_prompt, mask_history=cfg.data.mask_history)
        stats.add(enc, full)
        if enc.n_label_tokens:
            rows.append({"input_ids": enc.input_ids, "labels": enc.labels})
    if examples and not rows:
        raise TrainingError("every example has all of its labels masked: there is nothing to learn from",
                            hint="check cutoff_len (answers may be cut away) and that answers are not empty")
    return rows, stats


def report_stats(name: str, stats: EncodeStats, cutoff_len: int) -> None:
    if stats.n_truncated:
        where = ", ".join(stats.truncated_origins[:5])
        console.print(f"[yellow]warning[/yellow]: {stats.n_truncated} of {stats.n_examples} {name} examples are "
                      f"longer than cutoff_len={cutoff_len} and were cut (e.g. {where}); raise cutoff_len "
                      "or shorten them ('tunesmith data check' lists them)")
    if stats.n_no_labels:
        console.print(f"[yellow]warning[/yellow]: {stats.n_no_labels} {name} examples had no trained token left "
                      "after truncation and were skipped")


def build_sft_rows(splits: Splits, template: Template, tokenizer: Any, cfg: Config,
                   ) -> tuple[list[dict[str, list[int]]], list[dict[str, list[int]]], dict[str, EncodeStats]]:
    """Train and validation rows for sft (packed when data.packing is on)."""
    from tunesmith.model.peft_extras import add_tokens_to_tokenizer

    add_tokens_to_tokenizer(tokenizer, cfg.finetune.new_special_tokens)  # tokenized whole, like the model's own
    train_ex = _examples_of("sft", splits.train, "sft")
    val_ex = _examples_of("sft", splits.val, "sft")
    train_rows, train_stats = encode_sft_rows(train_ex, template, tokenizer, cfg)
    val_rows, val_stats = encode_sft_rows(val_ex, template, tokenizer, cfg) if val_ex else ([], EncodeStats())
    report_stats("training", train_stats, cfg.data.cutoff_len)
    if cfg.data.packing:
        train_rows = pack([(r["input_ids"], r["labels"]) for r in train_rows], cfg.data.cutoff_len)
    return train_rows, val_rows, {"train": train_stats, "val": val_stats}


def build_pt_rows(splits: Splits, tokenizer: Any, cfg: Config) -> tuple[list[dict], list[dict]]:
    """Pre-training rows: documents concatenated and cut into cutoff_len blocks."""
    def rows(examples: list[Example]) -> list[dict]:
        texts = _examples_of("text", examples, "pt")
        return chunk_text([encode_text(t, tokenizer) for t in texts if isinstance(t, TextExample)],
                          cfg.data.cutoff_len, pack=cfg.data.packing is not False)  # packing: on unless false

    return rows(splits.train), rows(splits.val) if splits.val else []
