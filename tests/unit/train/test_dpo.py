"""Preference stages on the tiny model: the DPO reward margin on training pairs rises, LoRA keeps no second
model, SimPO / ORPO / IPO train, full DPO works, and data of the wrong kind is refused before loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.config import load_config
from tunesmith.train.callbacks import read_log
from tunesmith.train.dpo import run_dpo
from tunesmith.utils.errors import DataFormatError

# Chosen answers name the subject; rejected ones always dodge: a preference a 2-layer model can pick up.
SUBJECTS = [("What is 2 + 3?", "math", "I do not know."), ("水的化学式是什么？", "化学", "不知道。"),
            ("Who was the first emperor of Qin?", "history", "I do not know."),
            ("长江流入哪个海？", "地理", "不知道。"), ("What does the heart do?", "biology", "I do not know."),
            ("计算 5 × 6。", "数学", "不知道。"), ("Give a synonym for happy.", "English", "I do not know."),
            ("电阻为2欧，电流为3安，电压是多少？", "物理", "不知道。")]


@pytest.fixture
def pref_overrides(tiny_train_overrides: dict, dataset_dir: Path) -> dict:
    pairs = [{"question": q, "positive_answer": good, "negative_answer": bad} for q, good, bad in SUBJECTS]
    (dataset_dir / "pairs.json").write_text(json.dumps(pairs, ensure_ascii=False))
    info = json.loads((dataset_dir / "dataset_info.json").read_text())
    info["toy_pairs"] = {"file_name": "pairs.json"}
    (dataset_dir / "dataset_info.json").write_text(json.dumps(info))
    return {**tiny_train_overrides, "stage": "dpo", "dataset": "toy_pairs", "eval_dataset": "", "test_dataset": "",
            "num_train_epochs": 6}


def _margins(run: Path) -> list[float]:
    return [r["rewards/margins"] for r in read_log(run) if "rewards/margins" in r and "eval_loss" not in r]


def test_dpo_lora_raises_the_reward_margin(pref_overrides: dict) -> None:
    result = run_dpo(load_config(None, pref_overrides))
    m, out = result.metrics, result.output_dir
    margins = _margins(out)
    assert margins[0] == pytest.approx(0.0, abs=1e-6), "before the first update the policy is the reference"
    assert margins[-1] > 0.02 and margins[-1] > margins[0]
    assert m["final_loss"] < m["first_loss"]
    assert m["before"]["reward_accuracy"] == 0.0 < m["after"]["reward_accuracy"]
    assert m["after"]["reward_margin"] > m["before"]["reward_margin"]
    assert m["after"]["logp_gap"] > m["before"]["logp_gap"]
    assert m["reference"] == "the base with the adapter off"
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["task_type"] == "CAUSAL_LM" and not (out / "ref").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["pref_loss"] == "sigmoid"


@pytest.mark.parametrize("loss", ["simpo", "orpo", "ipo"])
def test_other_preference_losses_train(pref_overrides: dict, loss: str) -> None:
    over = {**pref_overrides, "pref_loss": loss, "max_steps": 4}
    if loss != "ipo":
        over = {**over, "stage": loss}
    m = run_dpo(load_config(None, over)).metrics
    assert m["pref_loss"] == loss and m["steps"] == 4
    assert m["after"]["logp_gap"] > m["before"]["logp_gap"], "chosen answers gain on rejected ones"


def test_full_dpo_precomputes_the_reference(pref_overrides: dict) -> None:
    over = {**pref_overrides, "finetuning_type": "full", "max_steps": 4, "learning_rate": 1e-3}
    result = run_dpo(load_config(None, over))
    assert (result.output_dir / "model.safetensors").exists()
    assert "precomputed" in result.metrics["reference"]
    assert result.metrics["after"]["reward_margin"] > 0


def test_dpo_refuses_sft_data_before_loading_a_model(pref_overrides: dict) -> None:
    over = {**pref_overrides, "dataset": "toy_train"}
    with pytest.raises(DataFormatError, match="stage 'dpo' needs preference data"):
        run_dpo(load_config(None, over))
    assert not Path(over["output_dir"]).exists(), "nothing is written when the data is wrong"
