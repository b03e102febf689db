"""KTO on the tiny model: good answers gain log-probability on bad ones, LoRA keeps no second model, and
a batch of one is refused before the model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.config import load_config
from tunesmith.train.kto import run_kto
from tunesmith.utils.errors import ConfigError

QUESTIONS = ["What is 2 + 3?", "水的化学式是什么？", "Who was the first emperor of Qin?", "长江流入哪个海？",
             "What does the heart do?", "计算 5 × 6。", "Give a synonym for happy.", "光合作用需要什么？"]
GOOD = ["math", "化学", "history", "地理", "biology", "数学", "English", "生物"]


@pytest.fixture
def kto_overrides(tiny_train_overrides: dict, dataset_dir: Path) -> dict:
    rows = []
    for q, g in zip(QUESTIONS, GOOD, strict=True):  # the notes' shape: instruction, output, kto_tag
        rows += [{"instruction": q, "output": g, "kto_tag": True},
                 {"instruction": q, "output": "I do not know.", "kto_tag": False}]
    (dataset_dir / "kto.json").write_text(json.dumps(rows, ensure_ascii=False))
    return {**tiny_train_overrides, "stage": "kto", "dataset": "kto.json", "eval_dataset": "", "test_dataset": "",
            "num_train_epochs": 3}


def test_kto_widens_the_gap_between_good_and_bad_answers(kto_overrides: dict) -> None:
    result = run_kto(load_config(None, kto_overrides))
    m = result.metrics
    assert (m["desirable"], m["undesirable"]) == (8, 8)
    before, after = m["before"], m["after"]
    assert after["logp_gap"] == pytest.approx(after["logps_desirable"] - after["logps_undesirable"], abs=1e-3)
    assert after["logp_gap"] > before["logp_gap"] + 0.5, (before, after)
    assert m["after"]["reward_margin"] > m["before"]["reward_margin"]
    assert m["final_loss"] < m["first_loss"]
    assert (result.output_dir / "adapter_model.safetensors").exists() and not (result.output_dir / "ref").exists()


def test_kto_refuses_a_batch_of_one(kto_overrides: dict) -> None:
    with pytest.raises(ConfigError, match="at least 2 examples per batch"):
        run_kto(load_config(None, {**kto_overrides, "per_device_train_batch_size": 1}))
    assert not Path(kto_overrides["output_dir"]).exists()
