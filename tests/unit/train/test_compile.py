"""torch.compile of the decoder layers: when auto turns it on, and that it changes no numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from tunesmith.config.schema import FinetuneArgs
from tunesmith.model.adapters import apply_finetuning
from tunesmith.train import compile as tc
from tunesmith.train import fast
from tunesmith.train.collate import PadCollator


@pytest.fixture()
def model(tiny_model_dir: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    return apply_finetuning(m, FinetuneArgs(lora_rank=4, lora_alpha=8, lora_dropout=0.0))


def _decide(model: torch.nn.Module, setting: bool | None = None, tokens: int = 10**6, **kw: bool) -> bool:
    args = {"fast_path": True, "gradient_checkpointing": False, **kw}
    return tc.decide(setting, model.config, trained_tokens=tokens, **args)[0]


def test_auto_compiles_only_runs_that_pay_for_it(model: torch.nn.Module, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tc, "compiler_available", lambda: True)
    cold = int(tc.COLD_COMPILE_S / tc.SAVED_S_PER_TOKEN)
    warm = int(tc.WARM_COMPILE_S / tc.SAVED_S_PER_TOKEN)
    assert _decide(model, tokens=2 * cold) and not _decide(model, tokens=cold // 2)
    assert not _decide(model, tokens=2 * warm)
    tc.mark_compiled(model)  # a run compiled this model shape before: inductor's cache is warm
    assert _decide(model, tokens=2 * warm) and not _decide(model, tokens=warm // 2)
    assert _decide(model, True, tokens=1) and not _decide(model, False)
    assert not _decide(model, True, fast_path=False) and not _decide(model, None, gradient_checkpointing=True)


def test_without_a_compiler_it_says_so(model: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tc, "compiler_available", lambda: False)
    if torch.cuda.is_available():
        pytest.skip("GPU compiles with Triton")
    on, why = tc.decide(True, model.config, trained_tokens=10**9, fast_path=True, gradient_checkpointing=False)
    assert not on and "compiler" in why


@pytest.mark.skipif(not tc.compiler_available(), reason="no C++ compiler for inductor")
def test_compiled_layers_give_the_same_loss_and_gradients(model: torch.nn.Module, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    rows = []
    for n in (9, 21, 14):  # unequal lengths: packed rows, restarting positions
        ids = torch.randint(3, 200, (n,), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": [-100] * (n // 2) + ids[n // 2:]})
    batches = [PadCollator(0)(rows), PadCollator(0)(rows[:2])]  # two packed lengths: one dynamic graph

    def run(batch: dict[str, torch.Tensor]) -> tuple[float, list[torch.Tensor]]:
        model.zero_grad()
        loss, _ = fast.fast_causal_lm_loss(model, batch)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    eager = [run(b) for b in batches]
    assert tc.compile_decoder_layers(model) == 2
    compiled = [run(b) for b in batches]
    for (loss, grads), (ref_loss, ref_grads) in zip(compiled, eager):
        assert loss == pytest.approx(ref_loss, rel=1e-5)
        assert len(grads) == len(ref_grads) > 0
        for a, b in zip(grads, ref_grads):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-3)
    fast.release_workspace()
