"""Pre-training on the tiny model: text from a column and from .txt, packed blocks, loss and held-out
perplexity fall, and other data is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.config import load_config
from tunesmith.train.data import build_pt_rows, load_splits
from tunesmith.train.pt import run_pt
from tunesmith.utils.errors import DataFormatError

DOCS = ["The quick brown fox jumps over the lazy dog.", "Hello world, how are you today?",
        "math Chinese English physics chemistry history geography biology",
        "判断下面这道题属于哪个学科，只回答学科名称。"]


@pytest.fixture
def text_dir(dataset_dir: Path) -> Path:
    lines = [json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in DOCS * 6]
    (dataset_dir / "docs.jsonl").write_text("".join(lines), encoding="utf-8")
    (dataset_dir / "held_out.txt").write_text("\n\n".join(DOCS), encoding="utf-8")
    return dataset_dir


def test_pt_blocks_restart_positions_per_document(tiny_train_overrides: dict, text_dir: Path, tiny_tokenizer) -> None:  # noqa: ANN001
    cfg = load_config(None, {**tiny_train_overrides, "stage": "pt", "dataset": "docs.jsonl", "eval_dataset": "",
                             "test_dataset": "", "cutoff_len": 32})
    train, _ = build_pt_rows(load_splits(cfg), tiny_tokenizer, cfg)
    assert all(len(r["input_ids"]) <= 32 for r in train) and sum(len(r["input_ids"]) == 32 for r in train) >= 2
    starts = sum(r["position_ids"].count(0) for r in train)
    assert starts >= len(DOCS) * 6, "every document starts at position 0"


def test_pt_lowers_loss_and_held_out_perplexity(tiny_train_overrides: dict, text_dir: Path) -> None:
    over = {**tiny_train_overrides, "stage": "pt", "dataset": "docs.jsonl", "eval_dataset": "held_out.txt",
            "test_dataset": "", "cutoff_len": 64, "finetuning_type": "full", "learning_rate": 1e-2,
            "num_train_epochs": 10}
    result = run_pt(load_config(None, over))
    m = result.metrics
    assert m["final_loss"] < m["first_loss"] - 0.5
    assert m["after"]["perplexity"] < m["before"]["perplexity"]
    assert m["val_documents"] == len(DOCS) and m["train_blocks"] >= 1
    assert (result.output_dir / "model.safetensors").exists()


def test_pt_refuses_instruction_data(tiny_train_overrides: dict) -> None:
    with pytest.raises(DataFormatError, match="stage 'pt' needs text data"):
        run_pt(load_config(None, {**tiny_train_overrides, "stage": "pt"}))
