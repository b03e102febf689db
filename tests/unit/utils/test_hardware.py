"""The OpenMP wait policy follows how busy the machine is when a command starts."""

from __future__ import annotations

from tunesmith.utils.hardware import busy_share, openmp_wait_policy


def test_passive_only_when_other_work_holds_half_the_cpu() -> None:
    assert openmp_wait_policy(busy=0.8) == "PASSIVE"
    assert openmp_wait_policy(busy=0.5) == "PASSIVE"
    assert openmp_wait_policy(busy=0.1) is None


def test_busy_share_is_a_fraction() -> None:
    share = busy_share(0.05)
    assert share is None or 0.0 <= share <= 1.0


AMX = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
AVX2 = frozenset({"avx2", "fma"})
CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
        "FBGEMM_ENABLE_INSTRUCTIONS")


def _cpu(monkeypatch, flags: frozenset[str], **env: str) -> None:
    from tunesmith.utils import hardware

    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    monkeypatch.setattr(hardware, "has_cuda", lambda: False)
    for name in CAPS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_a_cpu_without_bf16_trains_fp32_even_when_the_config_asks_for_bf16(monkeypatch) -> None:
    from tunesmith.utils.hardware import resolve_bf16

    _cpu(monkeypatch, AVX2)
    on, why = resolve_bf16(None)
    assert not on and "fp32" in why and "AVX2" in why
    on, why = resolve_bf16(True)  # LLaMA-Factory's example configs say bf16: true
    assert not on and "refused" in why
    assert resolve_bf16(False) == (False, "bf16=false")


def test_bf16_cpu_uses_bf16_unless_told_not_to(monkeypatch) -> None:
    from tunesmith.utils.hardware import cpu_class, resolve_bf16

    _cpu(monkeypatch, AMX)
    assert resolve_bf16(None)[0] and resolve_bf16(True)[0]
    assert not resolve_bf16(False)[0]
    assert cpu_class() == "AMX bf16"


def test_an_instruction_set_cap_below_bf16_counts_as_no_bf16(monkeypatch) -> None:
    from tunesmith.utils.hardware import cpu_class, cpu_supports_bf16

    _cpu(monkeypatch, AMX, ONEDNN_MAX_CPU_ISA="AVX2")
    assert not cpu_supports_bf16()
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in cpu_class()
    _cpu(monkeypatch, AMX, ATEN_CPU_CAPABILITY="avx2")
    assert not cpu_supports_bf16()
    _cpu(monkeypatch, AMX, ONEDNN_MAX_CPU_ISA="AVX512_CORE_AMX")
    assert cpu_supports_bf16()


def test_training_loads_fp32_weights_on_a_cpu_without_bf16(monkeypatch, tmp_path) -> None:
    """The load itself: a bf16 checkpoint (most published ones) comes back fp32, with the reason printed."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tunesmith.config.schema import Config
    from tunesmith.train import runner

    _cpu(monkeypatch, AVX2)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, head_dim=8)
    LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(tmp_path / "m")
    printed: list[str] = []
    monkeypatch.setattr(runner.console, "print", lambda *a, **k: printed.append(" ".join(map(str, a))))
    conf = Config.model_validate({"model": {"model_name_or_path": str(tmp_path / "m")},
                                  "train": {"bf16": True, "output_dir": str(tmp_path / "out")}})
    model = runner.load_for_training(conf, str(tmp_path / "m"))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert any("fp32 compute" in line and "refused" in line for line in printed)
