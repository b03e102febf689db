"""The CPU fast path: a causal-LM loss that never materializes full-vocabulary logits.

With Gemma's 262k-token vocabulary the output layer costs more than the whole transformer body for
short answers. We run the decoder, keep only the hidden states at positions that carry a label, and
compute the cross-entropy in chunks of rows. The gradient with respect to those hidden states is
computed in the same pass, so the head costs two matrix multiplies per labelled token instead of three.

When the output layer is frozen (LoRA, freeze tuning) the pass is "online", as flash attention does
for its softmax: the vocabulary is walked in cache-sized blocks, each block's logits are made,
exponentiated against a running maximum and multiplied back into the gradient at once, so the
weight is read from memory once per chunk of rows instead of twice and no logits buffer exists at
all. With 120 labelled rows and Gemma's 335 MB bf16 output layer this took the head from 150-200 ms
to ~105 ms per step here, and dropped ~190 MB of logits buffers. Full fine-tuning also needs the
weight's gradient, which needs the normalized softmax; it keeps the two-pass buffered version.

Padding is removed by packing: the rows of a right-padded batch are laid end to end in one row with
position ids that restart at 0 for every example; transformers turns restarting position ids into a
block-diagonal causal mask, so no example sees another and the loss is the padded batch's loss.
"""

from __future__ import annotations

from typing import Any

import torch

from tunesmith.utils.errors import TrainingError

IGNORE_INDEX = -100
DEFAULT_CHUNK = 256  # rows of logits per chunk; 256 measured fastest here (64/128/256 with reused buffers)
# Rows x vocabulary-block elements per step of the online pass (8 MB in fp32): measured here, blocks of
# 8-16k columns for 120-256 rows beat both smaller blocks (more small matmuls) and larger ones (the
# block falls out of cache before its second matmul reads it).
BLOCK_ELEMENTS = 1 << 21
MIN_BLOCK, MAX_BLOCK = 4096, 16384
# Packed rows are padded to a multiple of this many tokens (their own attention block, no loss): a new
# row length per step made oneDNN build new matmul kernels every step and the process grow from 2.0 to
# 3.2 GB over 40 LoRA steps; with 64 it stayed at 2.4 GB and the steps got 8% faster (measured here).
PACK_MULTIPLE = 64
PACK_ATTENTION_SHARE = 0.5  # pack rows until attention over the packed row costs ~50% of the layer matmuls

_workspace: dict[tuple, torch.Tensor] = {}


def _flat_buffer(name: str, numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A 1-D buffer of at least ``numel`` elements, reused across chunks and steps (it only grows).

    A fresh 100-400 MB tensor per chunk costs more in page faults than the arithmetic on it does
    (measured: 33 ms to allocate-and-fill vs 9 ms to fill a reused one, per 128 x 262k chunk).
    """
    key = (name, dtype, device)
    buf = _workspace.get(key)
    # A buffer made under inference_mode (evaluation) cannot be written outside it (training), and
    # the other way round: make a new one when the mode changed.
    if buf is None or buf.numel() < numel or buf.is_inference() != torch.is_inference_mode_enabled():
        _workspace.pop(key, None)
        buf = _workspace[key] = torch.empty(numel, dtype=dtype, device=device)
    return buf


def _buffer(name: str, rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A reused (rows, cols) buffer: the flat buffer of that width, viewed as a matrix."""
    return _flat_buffer(f"{name}/{cols}", rows * cols, dtype, device)[:rows * cols].view(rows, cols)


def release_workspace() -> None:
    """Free the loss's reused buffers (call when training ends)."""
    _workspace.clear()


class FusedLinearCrossEntropy(torch.autograd.Function):
    """sum_i CE(h_i @ W^T, y_i), with gradients for h (and W if it trains) computed in forward."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, chunk: int,
                softcap: float | None, block: int | None = None) -> torch.Tensor:
        need_h = ctx.needs_input_grad[0]
        need_w = ctx.needs_input_grad[1]
        ctx.has = (need_h, need_w)
        ctx.weight_dtype = weight.dtype
        if not need_w:
            total, grad_h = _online(h, weight, target, chunk, softcap, block, need_h)
            ctx.save_for_backward(*(t for t in (grad_h,) if t is not None))
            return total
        grad_h = torch.empty_like(h) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        w = weight.to(h.dtype) if weight.dtype != h.dtype else weight
        rows = min(chunk, h.shape[0])
        vocab = w.shape[0]
        # raw: the matmul's output in h's dtype (and later the gradient); probs: fp32 logits -> softmax.
        raw_buf = _buffer("raw", rows, vocab, h.dtype, h.device)
        prob_buf = _buffer("probs", rows, vocab, torch.float32, h.device)
        for start in range(0, h.shape[0], chunk):
            hc, yc = h[start:start + chunk], target[start:start + chunk]
            n = hc.shape[0]
            raw, probs = raw_buf[:n], prob_buf[:n]
            torch.mm(hc, w.t(), out=raw)
            probs.copy_(raw)
            if softcap:
                tanh = _buffer("tanh", rows, vocab, torch.float32, h.device)[:n]
                tanh.copy_(probs.div_(softcap).tanh_())  # kept for the chain rule below
                probs.mul_(softcap)
            # Softmax in place, in fp32 (each op one pass; torch's fused logsumexp is 3x slower here).
            top = probs.amax(dim=1, keepdim=True)
            probs.sub_(top)
            target_logit = probs.gather(1, yc[:, None]).squeeze(1)
            probs.exp_()
            denom = probs.sum(dim=1, keepdim=True)
            total += (denom.log().squeeze(1) - target_logit).sum()
            if not (need_h or need_w):
                continue
            probs.div_(denom)
            probs[torch.arange(n, device=yc.device), yc] -= 1.0
            if softcap:
                probs.mul_(tanh.pow_(2).neg_().add_(1.0))
            grad = raw.copy_(probs)  # reuse the matmul's buffer for the bf16 gradient
            if need_h:
                torch.mm(grad, w, out=grad_h[start:start + n])
            if need_w:
                grad_w += (grad.t() @ hc).float()
        ctx.save_for_backward(*(t for t in (grad_h, grad_w) if t is not None))
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple:
        saved = list(ctx.saved_tensors)
        need_h, need_w = ctx.has
        gh = saved.pop(0) * grad_out if need_h else None  # a 0-dim factor keeps grad_h's dtype
        gw = (saved.pop(0) * grad_out).to(ctx.weight_dtype) if need_w else None
        return gh, gw, None, None, None, None


def _online(h: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, chunk: int, softcap: float | None,
            block: int | None, need_h: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Summed CE and (if asked) its gradient for h, walking the vocabulary once per chunk of rows.

    For each vocabulary block: logits z = h W_b^T, running max m and sum s of exp(z - m) (both
    rescaled when m grows), and acc += exp(z - m) W_b. At the end lse = m + log s and
    dL/dh = acc / s - W_y. With soft-capping z -> c tanh(z / c) and each term carries 1 - tanh^2.
    """
    w = weight.to(h.dtype) if weight.dtype != h.dtype else weight
    vocab, dim = w.shape
    total = torch.zeros((), dtype=torch.float32, device=h.device)
    grad_h = torch.empty_like(h) if need_h else None
    rows = min(chunk, h.shape[0])
    size = block or max(MIN_BLOCK, min(MAX_BLOCK, BLOCK_ELEMENTS // rows))
    size = min(size, vocab)
    # Flat buffers viewed as (rows, columns) so the last, narrower block is contiguous too. They only
    # grow (to at most ~BLOCK_ELEMENTS for chunks up to 512 rows), so few steps reallocate.
    numel = rows * size
    z_buf = _flat_buffer("block", numel, h.dtype, h.device)
    f_buf = _flat_buffer("block32", numel, torch.float32, h.device)
    t_buf = _flat_buffer("tanh", numel, torch.float32, h.device) if softcap else None
    for start in range(0, h.shape[0], chunk):
        hc, yc = h[start:start + chunk], target[start:start + chunk]
        n = hc.shape[0]
        m = torch.full((n, 1), -torch.inf, dtype=torch.float32, device=h.device)
        s = torch.zeros((n, 1), dtype=torch.float32, device=h.device)
        acc = torch.zeros((n, dim), dtype=torch.float32, device=h.device) if need_h else None
        target_logit = torch.empty(n, dtype=torch.float32, device=h.device)
        which, offset = yc // size, yc % size
        for j, v in enumerate(range(0, vocab, size)):
            wb = w[v:v + size]
            b = wb.shape[0]
            z = z_buf[:n * b].view(n, b)
            f = f_buf[:n * b].view(n, b)
            torch.mm(hc, wb.t(), out=z)
            f.copy_(z)
            if softcap:
                t = t_buf[:n * b].view(n, b)
                t.copy_(f.div_(softcap).tanh_())
                f.mul_(softcap)
            here = (which == j).nonzero().squeeze(1)
            if here.numel():
                target_logit[here] = f[here, offset[here]]
            grown = torch.maximum(m, f.amax(dim=1, keepdim=True))
            scale = (m - grown).exp_()
            f.sub_(grown).exp_()
            s.mul_(scale).add_(f.sum(dim=1, keepdim=True))
            m = grown
            if acc is not None:
                if softcap:
                    f.mul_(t.pow_(2).neg_().add_(1.0))  # chain rule through c * tanh(z / c)
                z.copy_(f)
                acc.mul_(scale).add_(z @ wb)
        total += (m.squeeze(1) + s.log().squeeze(1) - target_logit).sum()
        if acc is not None and grad_h is not None:
            w_y = w[yc].float()
            if softcap:
                w_y.mul_((1.0 - (target_logit / softcap).pow(2))[:, None])
            grad_h[start:start + n] = acc.div_(s).sub_(w_y)
    return total, grad_h


def _liger() -> Any:
    """liger-kernel's fused linear cross-entropy (Triton, GPU only) when installed, else None."""
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy
    except ImportError:
        return None
    return liger_fused_linear_cross_entropy


def linear_cross_entropy_sum(h: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, chunk: int,
                             softcap: float | None, block: int | None = None) -> torch.Tensor:
    """Summed CE of ``h @ weight.T``: liger's Triton kernel on a GPU when present, ours otherwise.

    The GPU branch cannot run on this project's CPU machines; it is kept small and used only when
    both CUDA and liger-kernel are available.
    """
    if h.is_cuda and (liger := _liger()) is not None:
        return liger(h, weight, target, reduction="sum", softcap=softcap)
    with torch.autocast(h.device.type, enabled=False):  # dtypes are handled inside; out= needs no autocast
        return FusedLinearCrossEntropy.apply(h, weight, target, chunk, softcap, block)


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


def supports_packing(model: Any) -> bool:
    """True when restarting position ids give each packed example its own attention.

    transformers' own model classes build a block-diagonal causal mask from position ids that restart
    (``masking_utils.find_packed_sequence_indices``); remote code may not, so it keeps padded batches.
    """
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    return type(lm).__module__.startswith("transformers.models.") and \
        getattr(lm.config, "_attn_implementation", "sdpa") in ("sdpa", "eager", "flash_attention_2",
                                                                  "flash_attention_3")


def pack_token_budget(config: Any, longest: int) -> int:
    """How many tokens one packed row may hold.

    Attention over a packed row of T tokens costs ~4·T·heads·head_dim FLOPs per token whatever the
    mask, against ~2·(layer parameters) for the layer's matmuls; rows are cut where attention would
    pass ``PACK_ATTENTION_SHARE`` of that, and never below the longest example.
    """
    text = getattr(config, "text_config", None) or config
    d = text.hidden_size
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or d // heads
    kv = getattr(text, "num_key_value_heads", None) or heads
    inter = getattr(text, "intermediate_size", None) or 4 * d
    layer_params = d * heads * head_dim * 2 + d * kv * head_dim * 2 + 3 * d * inter
    budget = int(PACK_ATTENTION_SHARE * 2 * layer_params / (4 * heads * head_dim))
    return max(longest, budget)


def _pack(batch: dict[str, torch.Tensor], budget: int, multiple: int = PACK_MULTIPLE,
          ) -> list[dict[str, torch.Tensor]] | None:
    """Right-padded rows laid end to end, as few packed rows (of at most ``budget`` tokens) as fit.

    Each packed row is its own forward pass with batch size 1, so there is no padding at all. Returns
    None when the batch has no padding or is not right-padded (it is then used as it is).
    """
    mask = batch.get("attention_mask")
    if mask is None or "position_ids" in batch or bool(mask.all()):
        return None
    lengths = [int(n) for n in mask.sum(dim=1).tolist()]
    if any(int(mask[i, :n].sum()) != n for i, n in enumerate(lengths)):
        return None  # left padding or holes: keep the batch as it is
    groups: list[list[int]] = [[]]
    used = 0
    for i, n in enumerate(lengths):
        if groups[-1] and used + n > budget:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += n
    out = []
    for group in groups:
        ids = torch.cat([batch["input_ids"][i, :lengths[i]] for i in group])
        pos = torch.cat([torch.arange(lengths[i], device=ids.device) for i in group])
        # The target of each position is the next label of the same example; an example's last
        # position has none (its "next token" would be the following example's first one).
        end = torch.full((1,), IGNORE_INDEX, dtype=batch["labels"].dtype, device=ids.device)
        targets = torch.cat([t for i in group for t in (batch["labels"][i, 1:lengths[i]], end)])
        if extra := -len(ids) % multiple:  # a filler block: positions restart, so nothing attends to it
            ids = torch.cat([ids, ids.new_zeros(extra)])
            pos = torch.cat([pos, torch.arange(extra, device=ids.device)])
            targets = torch.cat([targets, targets.new_full((extra,), IGNORE_INDEX)])
        out.append({"input_ids": ids[None], "position_ids": pos[None], "targets": targets[None]})
    return out


def _targets(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Next-token targets aligned with every position (the last position of a row has none)."""
    labels = batch["labels"]
    end = torch.full_like(labels[:, :1], IGNORE_INDEX)
    return torch.cat([labels[:, 1:], end], dim=1)


def fast_causal_lm_loss(model: Any, batch: dict[str, torch.Tensor], *, num_items: int | None = None,
                        chunk: int = DEFAULT_CHUNK, block: int | None = None) -> tuple[torch.Tensor, int]:
    """Mean (or sum / num_items) next-token loss over labelled positions; returns (loss, n_labels).

    A right-padded batch is packed into rows without padding first (see the module docstring); the
    result is the padded batch's loss.
    """
    decoder, head, softcap = _decoder_and_head(model)
    packed = None
    if supports_packing(model):
        longest = int(batch["attention_mask"].sum(dim=1).max()) if "attention_mask" in batch else 0
        packed = _pack(batch, pack_token_budget(model.config, longest))
    if packed is None:
        parts = [{**{k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch},
                  "targets": _targets(batch)}]
    else:
        parts = packed
    total: torch.Tensor | None = None
    n = 0
    for part in parts:
        target = part.pop("targets")
        keep = target != IGNORE_INDEX
        k = int(keep.sum())
        if k == 0:
            continue
        hidden = decoder(**part, use_cache=False).last_hidden_state
        piece = linear_cross_entropy_sum(hidden[keep], head.weight, target[keep], chunk, softcap, block)
        total = piece if total is None else total + piece
        n += k
    if total is None:
        raise TrainingError(
            "a training batch has no tokens that carry loss (every label is masked)",
            hint="check that examples have non-empty answers and that cutoff_len does not cut them away "
            "('tunesmith data check' shows both)",
        )
    return total / (num_items or n), n
