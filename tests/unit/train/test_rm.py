"""Reward model on the tiny model: pairwise accuracy on a held-out separable set beats chance, the head
trains and is saved with the adapter, and a chat adapter is refused as a starting point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.config import load_config
from tunesmith.train.rm import run_rm
from tunesmith.utils.errors import ConfigError

QUESTIONS = ["What is 2 + 3?", "水的化学式是什么？", "Who was the first emperor of Qin?", "长江流入哪个海？",
             "What does the heart do?", "计算 5 × 6。", "Give a synonym for happy.",
             "电阻为2欧，电流为3安，电压是多少？",
             "What is 7 x 8?", "Name a noble gas.", "光合作用需要什么？", "Who wrote Hamlet?"]
GOOD = ["math", "化学", "history", "地理", "biology", "数学", "English", "物理", "math", "chemistry", "生物", "English"]


@pytest.fixture
def rm_overrides(tiny_train_overrides: dict, dataset_dir: Path) -> dict:
    # Separable: the chosen answer names a subject, the rejected one dodges.
    pairs = [{"prompt": q, "chosen": g, "rejected": "I do not know." if i % 2 else "不知道。"}
             for i, (q, g) in enumerate(zip(QUESTIONS, GOOD, strict=True))]
    (dataset_dir / "rm_train.json").write_text(json.dumps(pairs[:8], ensure_ascii=False))
    (dataset_dir / "rm_val.json").write_text(json.dumps(pairs[8:], ensure_ascii=False))
    return {**tiny_train_overrides, "stage": "rm", "dataset": "rm_train.json", "eval_dataset": "rm_val.json",
            "test_dataset": "", "num_train_epochs": 12}


def test_reward_model_beats_chance_on_held_out_pairs(rm_overrides: dict) -> None:
    result = run_rm(load_config(None, rm_overrides))
    m, out = result.metrics, result.output_dir
    assert m["probe_split"] == "val" and m["val_pairs"] == 4
    assert m["after"]["pairwise_accuracy"] > 0.5, m
    assert m["after"]["reward_margin"] > m["before"]["reward_margin"]
    assert m["final_loss"] < m["first_loss"]
    from safetensors.torch import load_file

    keys = list(load_file(out / "adapter_model.safetensors"))
    assert any("score" in k for k in keys), "the new reward head is saved with the adapter"
    assert json.loads((out / "adapter_config.json").read_text())["task_type"] == "SEQ_CLS"


def test_reward_model_refuses_a_chat_adapter(rm_overrides: dict, tmp_path: Path) -> None:
    fake = tmp_path / "sft_run"
    fake.mkdir()
    (fake / "adapter_config.json").write_text(json.dumps({"task_type": "CAUSAL_LM"}))
    with pytest.raises(ConfigError, match="not a reward model"):
        run_rm(load_config(None, {**rm_overrides, "continue_from": str(fake)}))
