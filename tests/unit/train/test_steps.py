"""One step count: the Trainer's own, tunesmith's TrainingArguments, the TRL stages' arguments, the
advisor and a continued run's schedule agree, on combinations where rounding down would differ."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.config import load_config
from tunesmith.train.steps import config_steps, default_eval_steps, steps_per_epoch, total_steps

# (rows, batch, accumulation, epochs): fractional epochs, a short last batch, a short last step
CASES = [(236, 4, 1, 0.5), (10, 4, 1, 1.5), (70, 4, 2, 2.5), (33, 8, 3, 1.0), (5, 8, 1, 3.0), (1000, 3, 4, 0.35)]


def _cfg(rows_case: tuple, **extra: object):  # noqa: ANN202
    _, bs, ga, epochs = rows_case
    return load_config(None, {"dataset": "d", "per_device_train_batch_size": bs, "gradient_accumulation_steps": ga,
                              "num_train_epochs": epochs, "output_dir": "unused", **extra})


@pytest.mark.parametrize("case", CASES)
def test_every_caller_counts_the_trainers_steps(case: tuple, tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, Trainer
    from trl import DPOConfig

    from tunesmith.train.runner import training_arguments
    from tunesmith.train.trl_setup import trl_args

    rows = case[0]
    cfg = _cfg(case)
    args = training_arguments(cfg, has_eval=True, n_train_rows=rows)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    data = [{"input_ids": [1, 2]}] * rows
    trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data[:1])
    real = trainer.set_initial_training_values(args, trainer.get_train_dataloader())[-1]  # the Trainer's max_steps
    assert config_steps(cfg, rows) == real
    assert total_steps(rows, case[1], case[2], case[3]) == real
    assert args.eval_steps == default_eval_steps(real)
    assert trl_args(cfg, DPOConfig, has_eval=True, n_rows=rows).eval_steps == args.eval_steps


def test_max_steps_wins_and_processes_split_the_rows() -> None:
    assert total_steps(100, 4, 1, 3.0, max_steps=7) == 7
    assert steps_per_epoch(100, 4, 1, processes=2) == 13  # 50 rows per process, 13 batches
    assert steps_per_epoch(101, 4, 1, processes=2) == 13  # 51 rows (the sampler pads), 13 batches


def test_the_schedule_of_a_continued_run_uses_the_same_count(tiny_train_overrides: dict) -> None:
    from tunesmith.train.data import load_splits
    from tunesmith.train.multistage import estimate_steps

    cfg = load_config(None, {**tiny_train_overrides, "num_train_epochs": 1.5, "per_device_train_batch_size": 3})
    assert estimate_steps(cfg) == config_steps(cfg, len(load_splits(cfg).train))
