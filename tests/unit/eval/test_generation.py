"""Generation for evaluation: the output-layer layout fix and the same answers with and without it."""

from __future__ import annotations

from pathlib import Path

import torch

from tunesmith.model.generate import GenerationSettings, generate_ids, prepare_for_generation


def _frozen_tiny(path: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path).eval()
    model.requires_grad_(False)  # as after loading an adapter or merging one
    return model


def _head_bmm_calls(model: torch.nn.Module, ids: torch.Tensor) -> tuple[int, torch.Tensor]:
    from torch.profiler import ProfilerActivity, profile

    vocab = model.get_output_embeddings().weight.shape[0]
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        logits = model(input_ids=ids, logits_to_keep=1).logits
    calls = [e for e in prof.events() if e.name == "aten::bmm" and any(vocab in s for s in e.input_shapes if s)]
    return len(calls), logits


def test_frozen_head_input_is_made_contiguous_so_the_weight_is_not_copied_per_row(tiny_model_dir: Path) -> None:
    ids = torch.randint(10, 300, (4, 12))
    plain = _frozen_tiny(tiny_model_dir)
    copies, expected = _head_bmm_calls(plain, ids)
    # The trap itself: a batched matmul over a per-row copy of the output weight. If this starts
    # failing, PyTorch/transformers no longer take that path and prepare_for_generation can go.
    assert copies == 1
    fixed = _frozen_tiny(tiny_model_dir)
    prepare_for_generation(fixed)
    prepare_for_generation(fixed)  # idempotent: one hook
    copies, logits = _head_bmm_calls(fixed, ids)
    assert copies == 0
    assert len(fixed.get_output_embeddings()._forward_pre_hooks) == 1
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)  # same values up to summation order


def test_generated_ids_are_unchanged_by_the_fix(tiny_model_dir: Path, tiny_tokenizer) -> None:  # noqa: ANN001
    from transformers import AutoModelForCausalLM

    prompts = [[2, 4, 30, 31, 32], [2, 4, 40, 41], [2, 4, 50, 51, 52, 53, 54]]
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()  # requires_grad: no trap, no hook
    with torch.inference_mode():
        want = []
        for p in prompts:
            ids = torch.tensor([p])
            out = reference.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6,
                                     do_sample=False, eos_token_id=[1, 5], pad_token_id=0)
            want.append(out[0, len(p):].tolist())
    got = generate_ids(_frozen_tiny(tiny_model_dir), prompts, stop_ids=[1, 5], pad_id=0,
                       settings=GenerationSettings(max_new_tokens=6), batch_size=3)
    for w, g in zip(want, got):
        stop = next((i for i, t in enumerate(w) if t in (1, 5)), len(w))
        assert g == w[:stop]
