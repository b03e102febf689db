"""The CPU fast path: a causal-LM loss that never materializes full-vocabulary logits.

With Gemma's 262k-token vocabulary the output layer costs more than the whole transformer body for
short answers. We run the decoder, keep only the hidden states at positions that carry a label, and
compute the cross-entropy in chunks of rows. The gradient with respect to those hidden states is
computed in the same pass (softmax minus one-hot, times the weight), so the head costs two matrix
multiplies per labelled token instead of three, and peak memory is one chunk of logits.
"""

from __future__ import annotations

from typing import Any

import torch

from tunesmith.utils.errors import TrainingError

IGNORE_INDEX = -100
DEFAULT_CHUNK = 128  # rows per chunk; measured fastest here among 64/128/256/512


class FusedLinearCrossEntropy(torch.autograd.Function):
    """sum_i CE(h_i @ W^T, y_i), with gradients for h (and W if it trains) computed in forward."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, chunk: int,
                softcap: float | None) -> torch.Tensor:
        need_h = ctx.needs_input_grad[0]
        need_w = ctx.needs_input_grad[1]
        grad_h = torch.empty_like(h) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        w = weight.to(h.dtype) if weight.dtype != h.dtype else weight
        for start in range(0, h.shape[0], chunk):
            hc, yc = h[start:start + chunk], target[start:start + chunk]
            raw = (hc @ w.t()).float()
            logits = softcap * torch.tanh(raw / softcap) if softcap else raw
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, yc[:, None]).squeeze(1)).sum()
            if not (need_h or need_w):
                continue
            probs = logits.sub_(lse[:, None]).exp_()
            probs[torch.arange(yc.shape[0], device=yc.device), yc] -= 1.0
            if softcap:
                probs.mul_(1.0 - torch.tanh(raw / softcap) ** 2)
            g = probs.to(h.dtype)
            if need_h:
                grad_h[start:start + chunk] = g @ w
            if need_w:
                grad_w += (g.t() @ hc).float()
        ctx.save_for_backward(*(t for t in (grad_h, grad_w) if t is not None))
        ctx.has = (need_h, need_w)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple:
        saved = list(ctx.saved_tensors)
        need_h, need_w = ctx.has
        gh = saved.pop(0) * grad_out if need_h else None  # a 0-dim factor keeps grad_h's dtype
        gw = (saved.pop(0) * grad_out).to(ctx.weight_dtype) if need_w else None
        return gh, gw, None, None, None


def _liger() -> Any:
    """liger-kernel's fused linear cross-entropy (Triton, GPU only) when installed, else None."""
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy
    except ImportError:
        return None
    return liger_fused_linear_cross_entropy


def linear_cross_entropy_sum(h: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, chunk: int,
                             softcap: float | None) -> torch.Tensor:
    """Summed CE of ``h @ weight.T``: liger's Triton kernel on a GPU when present, ours otherwise.

    The GPU branch cannot run on this project's CPU machines; it is kept small and used only when
    both CUDA and liger-kernel are available.
    """
    if h.is_cuda and (liger := _liger()) is not None:
        return liger(h, weight, target, reduction="sum", softcap=softcap)
    return FusedLinearCrossEntropy.apply(h, weight, target, chunk, softcap)


def _decoder_and_head(model: Any) -> tuple[Any, Any, float | None]:
    """The transformer body and the output embedding of a (possibly peft-wrapped) causal LM."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else lm.model
    head = lm.get_output_embeddings()
    softcap = getattr(lm.config, "final_logit_softcapping", None)
    return decoder, head, softcap


def supports_fast_loss(model: Any) -> bool:
    """True when the model has the decoder + linear head layout the fast loss needs."""
    try:
        decoder, head, _ = _decoder_and_head(model)
    except (AttributeError, TypeError):
        return False
    return decoder is not None and isinstance(head, torch.nn.Linear) and getattr(head, "bias", None) is None


def length_buckets(lengths: list[int], max_waste: float = 0.1) -> list[list[int]]:
    """Group row indices so that padding each group to its longest row wastes at most ``max_waste``.

    Rows are sorted by length and cut greedily; a batch of similar lengths stays one group. Running
    the groups separately removes most padding compute while keeping the batch (and so the loss and
    the optimizer step) exactly what the user configured.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups:
            g = groups[-1]
            width = lengths[g[0]]
            used = sum(lengths[j] for j in g) + lengths[i]
            if 1 - used / (width * (len(g) + 1)) <= max_waste:
                g.append(i)
                continue
        groups.append([i])
    return groups


def _sub_batches(batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    mask = batch.get("attention_mask")
    if mask is None or bool(mask.all()):
        return [batch]
    lengths = mask.sum(dim=1).tolist()
    if any(mask[i, : int(n)].sum() != n for i, n in enumerate(lengths)):
        return [batch]  # not right-padded: keep as is
    out = []
    for group in length_buckets([int(n) for n in lengths]):
        idx = torch.tensor(group)
        width = int(max(lengths[i] for i in group))
        sub = {k: v[idx, :width] for k, v in batch.items() if k in ("input_ids", "labels", "attention_mask",
                                                                    "position_ids")}
        if bool(sub["attention_mask"].all()):
            del sub["attention_mask"]  # lets attention use the fast causal kernel
        out.append(sub)
    return out


def fast_causal_lm_loss(model: Any, batch: dict[str, torch.Tensor], *, num_items: int | None = None,
                        chunk: int = DEFAULT_CHUNK) -> tuple[torch.Tensor, int]:
    """Mean (or sum / num_items) next-token loss over labelled positions; returns (loss, n_labels).

    A right-padded batch is split into groups of similar length first, so padding costs (almost)
    nothing; the result is the same loss as the padded batch.
    """
    decoder, head, softcap = _decoder_and_head(model)
    total: torch.Tensor | None = None
    n = 0
    for sub in _sub_batches(batch):
        target = sub["labels"][:, 1:]
        keep = target != IGNORE_INDEX
        k = int(keep.sum())
        if k == 0:
            continue
        kwargs = {key: sub[key] for key in ("attention_mask", "position_ids") if key in sub}
        hidden = decoder(input_ids=sub["input_ids"], use_cache=False, **kwargs).last_hidden_state
        part = linear_cross_entropy_sum(hidden[:, :-1][keep], head.weight, target[keep], chunk, softcap)
        total = part if total is None else total + part
        n += k
    if total is None:
        raise TrainingError(
            "a training batch has no tokens that carry loss (every label is masked)",
            hint="check that examples have non-empty answers and that cutoff_len does not cut them away "
            "('tunesmith data check' shows both)",
        )
    return total / (num_items or n), n
