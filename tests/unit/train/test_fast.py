"""The fast loss must be the model's own loss: same value, same gradients, with padding or packed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

from tunesmith.config.schema import FinetuneArgs
from tunesmith.model.adapters import apply_finetuning
from tunesmith.train import fast
from tunesmith.train.collate import PadCollator
from tunesmith.utils.errors import TrainingError


def _rows(lengths: list[int], vocab: int, seed: int = 0) -> list[dict[str, list[int]]]:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for n in lengths:
        ids = torch.randint(3, vocab, (n,), generator=g).tolist()
        answer = max(1, n // 3)
        rows.append({"input_ids": ids, "labels": [-100] * (n - answer) + ids[n - answer:]})
    return rows


def _model(softcap: float | None = None, vocab: int = 97) -> Gemma3ForCausalLM:
    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=8,
                              final_logit_softcapping=softcap, attn_implementation="sdpa")
    return Gemma3ForCausalLM(config).float().eval()


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("softcap", [None, 30.0, 0.5])  # 0.5: tanh far from linear
@pytest.mark.parametrize("block", [None, 10])  # one vocabulary block, or ten with a narrower last one
@pytest.mark.parametrize("head_trains", [True, False])  # two-pass buffered path / online path (LoRA)
def test_loss_and_gradients_match_the_models_own_on_a_padded_batch(softcap: float | None, block: int | None,
                                                                  head_trains: bool) -> None:
    # Lengths differ (packing and padding both matter) and exceed the sliding window of 8.
    model = _model(softcap)
    model.get_output_embeddings().weight.requires_grad_(head_trains)
    batch = PadCollator(pad_token_id=0)(_rows([5, 23, 12, 17], 97))
    assert "attention_mask" in batch
    ref = model(**batch).loss
    ref.backward()
    ref_grads = _grads(model)
    model.zero_grad()
    ours, n = fast.fast_causal_lm_loss(model, batch, chunk=7, block=block)  # several chunks, one partial
    ours.backward()
    assert n == int((batch["labels"][:, 1:] != -100).sum())
    assert abs(ours.item() - ref.item()) < 1e-5
    grads = _grads(model)
    assert grads.keys() == ref_grads.keys()
    for name, g in grads.items():
        assert torch.allclose(g, ref_grads[name], atol=1e-5, rtol=1e-4), name
    fast.release_workspace()


def test_packing_gives_each_example_its_own_attention() -> None:
    # The same example alone and packed after others must get the same per-token loss.
    model = _model()
    rows = _rows([9, 14, 6], 97)
    with torch.no_grad():
        alone = [fast.fast_causal_lm_loss(model, PadCollator(0)([r]))[0].item() for r in rows]
        packed = fast._pack(PadCollator(0)(rows), budget=10_000, multiple=1)
        assert packed is not None and len(packed) == 1 and packed[0]["input_ids"].shape == (1, 29)
        assert packed[0]["position_ids"][0].tolist() == list(range(9)) + list(range(14)) + list(range(6))
        sums = [a * int((torch.tensor(r["labels"][1:]) != -100).sum()) for a, r in zip(alone, rows)]
        together, n = fast.fast_causal_lm_loss(model, PadCollator(0)(rows))
    assert abs(together.item() * n - sum(sums)) < 1e-4


def test_packing_respects_the_token_budget_and_keeps_unpadded_batches() -> None:
    batch = PadCollator(0)(_rows([10, 10, 10, 4], 97))
    parts = fast._pack(batch, budget=20, multiple=1)
    assert [p["input_ids"].shape[1] for p in parts] == [20, 14]
    padded = fast._pack(batch, budget=20, multiple=16)  # filler to a multiple of 16, never a target
    assert [p["input_ids"].shape[1] for p in padded] == [32, 16]
    assert all(int((p["targets"] != -100).sum()) == int((q["targets"] != -100).sum()) for p, q in zip(padded, parts))
    assert fast._pack(PadCollator(0)(_rows([8, 8], 97)), budget=100) is None  # no padding: as it is
    left = dict(batch, attention_mask=batch["attention_mask"].flip(1))
    assert fast._pack(left, budget=100) is None  # left padding is not repacked


def test_budget_never_cuts_an_example_and_grows_with_layer_size() -> None:
    small = _model().config
    assert fast.pack_token_budget(small, longest=500) == 500
    big = Gemma3TextConfig(hidden_size=2048, intermediate_size=8192, num_attention_heads=8, head_dim=256,
                           num_key_value_heads=4, num_hidden_layers=1)
    assert fast.pack_token_budget(big, longest=10) > fast.pack_token_budget(small, longest=10)


def test_lora_in_bf16_autocast_stays_close_to_fp32(tiny_model_dir: Path) -> None:
    rows = _rows([11, 30, 19, 7], 500, seed=1)
    batch = PadCollator(0)(rows)
    losses = []
    for dtype in (torch.float32, torch.bfloat16):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=dtype)
        model = apply_finetuning(model, FinetuneArgs(lora_rank=4, lora_alpha=8, lora_dropout=0.0))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            loss, _ = fast.fast_causal_lm_loss(model, batch)
        loss.backward()
        lora_grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
        assert lora_grads and all(g is not None and g.dtype == torch.float32 for g in lora_grads)
        losses.append(loss.item())
    assert abs(losses[0] - losses[1]) < 0.05 * losses[0]


def test_full_finetuning_gets_the_output_layer_gradient() -> None:
    model = _model()
    batch = PadCollator(0)(_rows([6, 13], 97))
    model(**batch).loss.backward()
    ref = model.get_output_embeddings().weight.grad.clone()
    model.zero_grad()
    fast.fast_causal_lm_loss(model, batch, chunk=4)[0].backward()
    assert torch.allclose(model.get_output_embeddings().weight.grad, ref, atol=1e-5, rtol=1e-4)


def test_a_batch_without_any_label_fails_clearly() -> None:
    batch = PadCollator(0)([{"input_ids": [5, 6, 7], "labels": [-100, -100, -100]}])
    with pytest.raises(TrainingError, match="no tokens that carry loss"):
        fast.fast_causal_lm_loss(_model(), batch)


def test_buffers_made_during_inference_serve_training_afterwards() -> None:
    # Evaluation (inference_mode) then training in one process, as `train` does with eval steps.
    model = _model()
    batch = PadCollator(0)(_rows([7, 12], 97))
    fast.release_workspace()
    with torch.inference_mode():
        before, _ = fast.fast_causal_lm_loss(model, batch)
    loss, _ = fast.fast_causal_lm_loss(model, batch)
    loss.backward()
    assert abs(loss.item() - before.item()) < 1e-6
    with torch.inference_mode():
        fast.fast_causal_lm_loss(model, batch)
    fast.release_workspace()
