"""`tunesmith bench train` machinery on the tiny model: both modes give the issue's JSON shape and agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.train.benchmark import bench_train, flops_per_step


@pytest.mark.parametrize("back_to_back", [False, True])
def test_bench_train_reports_every_figure(tiny_model_dir: Path, back_to_back: bool) -> None:
    result = bench_train(str(tiny_model_dir), shapes=(24,), steps=3, log=lambda m: None, back_to_back=back_to_back,
                         compile=False)  # compiling is tested in test_compile.py
    assert result["mode"] == ("back-to-back" if back_to_back else "lockstep")
    assert result["shapes"][0]["compiled"] is False and result["shapes"][0]["first_step_s"] > 0
    (shape,) = result["shapes"]
    for key in ("seq_len", "baseline_tokens_per_s", "tokens_per_s", "speedup", "baseline_peak_rss_mb",
                "peak_rss_mb", "memory_ratio", "max_loss_diff"):
        assert shape[key] is not None, key
    assert shape["seq_len"] == 24 and shape["tokens_per_s"] > 0 and shape["baseline_tokens_per_s"] > 0
    # Same batches, same seed: the first loss (before any update) is the same model on the same data.
    assert len(shape["losses"]) == len(shape["baseline_losses"]) == 3
    assert abs(shape["losses"][0] - shape["baseline_losses"][0]) < 0.05
    assert result["matmul_gflops"] > 0 and result["roofline_fraction"] is not None  # tiny model: ~0
    assert result["matmul_precision"] in ("bf16", "fp32") and result["machine"]["cpu_class"]
    assert len(result["machine"]["load_average"]) == 3


def test_the_roofline_is_the_precision_training_computes_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """With oneDNN capped at AVX2 (bf16 emulated) training runs fp32, and the peak measured is fp32's."""
    from tunesmith.train import benchmark
    from tunesmith.utils import hardware

    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16", "amx_bf16"}))
    monkeypatch.setattr(hardware, "has_cuda", lambda: False)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert benchmark.compute_precision() == "fp32"
    report = benchmark.machine_report()
    assert report["isa_caps"]["ONEDNN_MAX_CPU_ISA"] == "AVX2" and "bf16 disabled" in report["cpu_class"]
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert benchmark.compute_precision() == "bf16"


def test_flops_model_counts_the_output_layer_only_at_labels(tiny_model_dir: Path) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_model_dir)
    body = flops_per_step(config, tokens=100, label_tokens=0, avg_ctx=50)
    with_head = flops_per_step(config, tokens=100, label_tokens=10, avg_ctx=50)
    assert with_head - body == pytest.approx(10 * 4 * config.vocab_size * config.hidden_size)
