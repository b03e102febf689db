"""Multi-stage runs and extending a finished run: each stage starts from the one before, later stages
default to a lower learning rate, replay mixes a deterministic share of earlier data, and the
learning-rate schedule choice for continue_from is applied and recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.config import load_config
from tunesmith.data.registry import load_examples
from tunesmith.train.multistage import run_stages, schedule_value
from tunesmith.utils.errors import ConfigError


@pytest.fixture
def two_datasets(dataset_dir: Path) -> Path:
    """A second SFT set and a preference set beside the toy SFT data."""
    words = ["zero", "one", "two", "three"]
    new = [{"instruction": f"Spell the number {i}.", "output": w} for i, w in enumerate(words)]
    (dataset_dir / "new.json").write_text(json.dumps(new * 2))
    pairs = [{"prompt": f"Spell {i}.", "chosen": w, "rejected": "I do not know."}
             for i, w in enumerate(["zero", "one", "two", "three"])]
    (dataset_dir / "pairs.json").write_text(json.dumps(pairs))
    return dataset_dir


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_two_stages_chain_halve_the_rate_and_replay(tiny_train_overrides: dict, two_datasets: Path) -> None:
    root = Path(tiny_train_overrides["output_dir"])
    over = {**tiny_train_overrides, "eval_dataset": "", "test_dataset": "", "max_steps": 2, "learning_rate": 1e-2,
            "stages": [{"dataset": "toy_train"}, {"dataset": "new.json", "replay": 0.25}]}
    result, last = run_stages(load_config(None, over))
    first, second = root / "stage1-sft", root / "stage2-sft"
    assert result.output_dir == second and last.train.output_dir == str(second)
    lineage = _summary(second)["lineage"]
    assert lineage["started_from"] == str(first)
    assert lineage["learning_rate"]["value"] == pytest.approx(5e-3)
    assert "stage_lr_scale" in lineage["learning_rate"]["source"]
    assert lineage["schedule"]["lr_schedule"] == "restart"
    replay = lineage["replay"]
    assert replay["examples"] == 4 and replay["of_earlier"] == 16 and replay["new_examples"] == 8
    assert replay["mixed_share"] == pytest.approx(4 / 12, abs=1e-4)
    # The replay sample is a readable file of earlier examples, the same one every time (seeded).
    picked = load_examples(replay["file"], two_datasets)
    earlier = load_examples("toy_train", two_datasets)
    assert len(picked) == 4 and all(p.messages in [e.messages for e in earlier] for p in picked)
    assert _summary(second)["metrics"]["train_examples"] == 12
    stages = json.loads((root / "stages.json").read_text())["stages"]
    assert [s["stage"] for s in stages] == ["sft", "sft"] and stages[0]["started_from"] is None
    # Stage 2 trained the adapter stage 1 produced.
    from safetensors.torch import load_file

    a, b = load_file(first / "adapter_model.safetensors"), load_file(second / "adapter_model.safetensors")
    assert a.keys() == b.keys() and any(not a[k].equal(b[k]) for k in a)


def test_replay_sample_is_deterministic(tiny_train_overrides: dict, two_datasets: Path) -> None:
    from tunesmith.train.multistage import add_replay

    earlier = load_config(None, {**tiny_train_overrides, "dataset": "toy_train"})
    later = load_config(None, {**tiny_train_overrides, "dataset": "new.json", "replay": 0.5})
    files = []
    for _ in range(2):
        _, record = add_replay(later, [earlier])
        files.append(Path(record["file"]).read_text())
    assert files[0] == files[1] and len(files[0].splitlines()) == 8
    _, other_seed = add_replay(load_config(None, {**tiny_train_overrides, "dataset": "new.json", "replay": 0.5,
                                                  "seed": 7}), [earlier])
    assert Path(other_seed["file"]).read_text() != files[0]


def test_replay_of_another_kind_of_data_is_refused(tiny_train_overrides: dict, two_datasets: Path) -> None:
    over = {**tiny_train_overrides, "eval_dataset": "", "test_dataset": "", "max_steps": 1,
            "stages": [{"dataset": "toy_train"}, {"stage": "dpo", "dataset": "pairs.json", "replay": 0.2}]}
    with pytest.raises(ConfigError, match="trains on preference data but the earlier training data is sft"):
        run_stages(load_config(None, over))


def test_sft_then_dpo_starts_from_the_sft_adapter(tiny_train_overrides: dict, two_datasets: Path) -> None:
    root = Path(tiny_train_overrides["output_dir"])
    over = {**tiny_train_overrides, "eval_dataset": "", "test_dataset": "", "max_steps": 2,
            "stages": [{"dataset": "new.json"}, {"stage": "dpo", "dataset": "pairs.json", "learning_rate": 1e-3}]}
    result, _ = run_stages(load_config(None, over))
    m = result.metrics
    assert m["reference"].startswith("frozen copy of the adapter in") and str(root / "stage1-sft") in m["reference"]
    assert m["lineage"]["learning_rate"] == {"value": 1e-3, "source": "set for this stage"}
    assert not (result.output_dir / "ref").exists(), "only the trained adapter is saved"


def test_continue_from_with_either_schedule(tiny_train_overrides: dict) -> None:
    base = {**tiny_train_overrides, "eval_dataset": "", "test_dataset": "", "max_steps": 4, "learning_rate": 1e-2,
            "lr_scheduler_type": "linear", "warmup_ratio": 0.0}
    first, _ = run_stages(load_config(None, base))
    out = Path(base["output_dir"]).parent
    cont = {**base, "continue_from": str(first.output_dir), "max_steps": 4, "output_dir": str(out / "more")}
    result, cfg = run_stages(load_config(None, {**cont, "lr_schedule": "continue"}))
    sched = result.metrics["lineage"]["schedule"]
    # Linear over 4 + 4 steps from 1e-2: at step 4 the stretched schedule is at half the peak.
    assert sched["start_lr"] == pytest.approx(5e-3) and cfg.train.warmup_ratio == 0.0
    assert (sched["earlier_steps"], sched["new_steps"]) == (4, 4)
    lrs = [r["learning_rate"] for r in map(json.loads, (result.output_dir / "train_log.jsonl").read_text().splitlines())
           if "learning_rate" in r]
    assert lrs[0] == pytest.approx(5e-3) and lrs[-1] < lrs[0]
    restarted, _ = run_stages(load_config(None, {**cont, "output_dir": str(out / "again")}))
    assert restarted.metrics["lineage"]["schedule"] == {"lr_schedule": "restart", "learning_rate": 1e-2,
                                                         "warmup_ratio": 0.0}


@pytest.mark.parametrize("kind", ["linear", "cosine", "constant_with_warmup"])
def test_schedule_value_matches_transformers(kind: str) -> None:
    import torch
    from transformers import get_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = get_scheduler(kind, opt, num_warmup_steps=3, num_training_steps=20)
    for step in range(20):
        assert schedule_value(kind, 0.1, 3, 20, step) == pytest.approx(sched.get_last_lr()[0], rel=1e-6), step
        opt.step()
        sched.step()
