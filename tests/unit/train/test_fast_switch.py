"""The fast path switches itself off, saying why, for a model it cannot run (a biased output layer)."""

from __future__ import annotations

import torch

from tunesmith.config import load_config
from tunesmith.train.runner import build_trainer, load_for_training


def test_a_biased_output_layer_turns_the_fast_path_off_with_the_reason(tiny_train_overrides: dict,
                                                                        capsys) -> None:  # noqa: ANN001
    cfg = load_config(None, {**tiny_train_overrides, "eval_dataset": "", "test_dataset": "", "max_steps": 1})
    model = load_for_training(cfg, cfg.model.model_name_or_path)
    base = model.get_base_model()
    head = base.lm_head
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    biased.weight = head.weight
    base.lm_head = biased
    rows = [{"input_ids": [2, 4, 60, 61, 5], "labels": [-100, -100, 60, 61, 5]}] * 4
    trainer, _ = build_trainer(cfg, model, 0, rows, [])
    assert trainer.fast_path is False
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "fast_path: the fast loss and packing are off" in out and "bias-free linear output layer" in out
