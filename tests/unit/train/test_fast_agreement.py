"""The fast path trains on the same batches as the standard path and follows its loss curve.

Issue 13: on data with two sub-tasks of different lengths (one-word labels, long JSON answers), the
fast path's length-grouped batches ran one sub-task after another and its loss spiked to 10-14 nats
on the real model while the standard path's fell smoothly. Equality tests of the loss on one batch
could not see that: the batches themselves differed. This test trains both paths on such data and
compares the logged loss of every step.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tunesmith.config import load_config
from tunesmith.train.sft import run_sft

# fp32: the fast loss equals the model's own to ~1e-7 relative at identical weights, and with the same
# batches and the same seeded LoRA initialization the two curves stay that close (measured: at most
# 8e-8 over these 10 steps). Different batches, or LoRA A matrices drawn from another RNG state,
# part the curves by 1e-3 from step 2.
REL_TOL = 1e-5


def _two_task_data(folder: Path, n: int = 48) -> Path:
    rng = random.Random(3)
    rows = []
    for i in range(n):
        if i % 2:
            rows.append({"instruction": "Which subject is this question from?", "input": f"What is {i} + {i}?",
                         "output": "math"})
        else:
            order = {"name": rng.choice(["Tom", "Alice", "Bob"]), "item": rng.choice(["apple", "book"]),
                     "qty": rng.randint(1, 20), "city": rng.choice(["Beijing", "Shanghai"])}
            rows.append({"instruction": "Extract the order as compact JSON.",
                         "input": f"{order['name']} orders {order['qty']} {order['item']} to {order['city']}.",
                         "output": json.dumps(order) + " " + json.dumps(order)})
    rng.shuffle(rows)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tasks.json").write_text(json.dumps(rows))
    (folder / "dataset_info.json").write_text(json.dumps({"tasks": {"file_name": "tasks.json"}}))
    return folder


def _losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if line.strip()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_fast_path_loss_curve_equals_the_standard_paths_on_two_tasks(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = _two_task_data(tmp_path / "data")
    curves = {}
    for fast in (True, False):
        cfg = load_config(None, {
            "model_name_or_path": str(tiny_model_dir), "template": "gemma", "dataset_dir": str(data),
            "dataset": "tasks", "cutoff_len": 128, "per_device_train_batch_size": 4, "max_steps": 10,
            "learning_rate": 1e-2, "warmup_ratio": 0.0, "logging_steps": 1, "save_steps": 1000,
            "report_summary": False, "plot_loss": False, "bf16": False, "torch_compile": False,
            "fast_path": fast, "output_dir": str(tmp_path / f"run-{fast}"), "seed": 7,
        })
        curves[fast] = _losses(run_sft(cfg).output_dir)
    fast, standard = curves[True], curves[False]
    assert sorted(fast) == sorted(standard) == list(range(1, 11))
    for step in standard:
        assert abs(fast[step] - standard[step]) <= REL_TOL * max(1.0, standard[step]), \
            (step, fast[step], standard[step], fast, standard)
