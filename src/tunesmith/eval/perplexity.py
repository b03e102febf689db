"""Perplexity of the reference answers under a model: exp(mean loss per reference token).

Each example is tokenized exactly as in training (same chat template), with loss only on the last
assistant reply and its end-of-turn marker; the mean is over all those tokens of the split. A tuned
model that learned the answers has a perplexity near 1; an untouched base model is often far above.
The output layer runs only where a label exists (the CPU fast loss), so a 262k vocabulary costs
little here.
"""

from __future__ import annotations

import math
from typing import Any

from tunesmith.data.records import SFTExample
from tunesmith.data.tokenize import encode_sft
from tunesmith.train.collate import PadCollator
from tunesmith.train.fast import fast_causal_lm_loss, supports_fast_loss

MAX_LOG_PPL = 700.0  # exp() beyond this overflows a float; such a model is hopeless anyway


def _summed_loss(model: Any, batch: dict[str, Any]) -> tuple[float, int]:
    if supports_fast_loss(model):
        mean, n = fast_causal_lm_loss(model, batch)
        return float(mean) * n, n
    out = model(**batch)  # mean over labelled positions
    n = int((batch["labels"][:, 1:] != -100).sum())
    return float(out.loss) * n, n


def reference_nll(loaded: Any, examples: list[SFTExample], *, cutoff_len: int = 1024,
                  batch_size: int = 8) -> tuple[float, int]:
    """(summed negative log-likelihood, number of scored tokens) of the references."""
    import torch

    tok = loaded.tokenizer
    rows = []
    for ex in examples:
        enc, _ = encode_sft(ex, loaded.template, tok, cutoff_len, train_on_prompt=False, mask_history=True)
        if enc.n_label_tokens:
            rows.append({"input_ids": enc.input_ids, "labels": enc.labels})
    rows.sort(key=lambda r: len(r["input_ids"]))  # similar lengths together: little padding
    collate = PadCollator(pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else 0)
    device = next(loaded.model.parameters()).device
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = {k: v.to(device) for k, v in collate(rows[start:start + batch_size]).items()}
            loss, n = _summed_loss(loaded.model, batch)
            total += loss
            count += n
    return total, count


def reference_perplexity(loaded: Any, examples: list[SFTExample], *, cutoff_len: int = 1024,
                         batch_size: int = 8) -> float | None:
    """exp(mean loss) over every reference token of ``examples``; None when nothing can be scored."""
    total, count = reference_nll(loaded, examples, cutoff_len=cutoff_len, batch_size=batch_size)
    if count == 0:
        return None
    return math.exp(min(total / count, MAX_LOG_PPL))
