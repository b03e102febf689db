"""After training: base vs tuned on the held-out split, so every run says whether it helped.

A short, greedy version of ``tunesmith eval --compare base,RUN`` (32 new tokens: an untuned base
model rambles to the limit, and this runs after every training run).
"""

from __future__ import annotations

from typing import Any

from tunesmith.config.schema import Config
from tunesmith.data.records import SFTExample
from tunesmith.eval.generation import predict
from tunesmith.eval.metrics import compute_metrics
from tunesmith.inference.load import load_inference_model
from tunesmith.model.generate import generation_settings


def base_vs_tuned(cfg: Config, run_dir: str, examples: list[SFTExample], *, max_new_tokens: int = 32,
                  ) -> dict[str, Any]:
    """Score the base model and base + the run's adapter on the same prompts."""
    run_cfg = cfg.model_copy(deep=True)
    run_cfg.model.adapter_name_or_path = run_dir
    loaded = load_inference_model(run_cfg)
    settings, _ = generation_settings(cfg, loaded.model, max_new_tokens=max_new_tokens)  # same for both models
    refs = [e.response for e in examples]
    bs = max(8, cfg.train.per_device_eval_batch_size)
    tuned_preds = predict(loaded, examples, settings, bs, "tuned model")
    if loaded.adapter_path:
        with loaded.model.disable_adapter():
            base_preds = predict(loaded, examples, settings, bs, "base model")
    else:  # a full or freeze fine-tune: the base is a different set of weights
        del loaded
        base = load_inference_model(cfg.model_copy(deep=True))
        base_preds = predict(base, examples, settings, bs, "base model")
    return {
        "n": len(examples),
        "base": compute_metrics(base_preds, refs),
        "tuned": compute_metrics(tuned_preds, refs),
        "examples": [
            {"prompt": e.prompt_messages[-1].content, "reference": r, "base": b, "tuned": t}
            for e, r, b, t in zip(examples[:5], refs, base_preds, tuned_preds)
        ],
    }
