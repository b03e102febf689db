"""Per-stage checks run for every stage before the first trains; settings a stage cannot use are said
once (lora_* when continuing an adapter, bf16 on the TRL stages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.config import load_config
from tunesmith.train import multistage
from tunesmith.utils import console as console_mod
from tunesmith.utils.errors import ConfigError


@pytest.fixture(autouse=True)
def fresh_notes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_mod, "_told", set())


@pytest.fixture
def no_stage_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def ran(*_a: object, **_k: object) -> None:
        raise AssertionError("a stage started training before every stage was checked")
    monkeypatch.setattr(multistage, "run_stage", ran)


@pytest.mark.parametrize(("bad_stage", "why"), [
    ({"stage": "grpo", "reward_funcs": "exact_mach", "per_device_train_batch_size": 4},
     r"stages\[2\]: 'reward_funcs': unknown reward 'exact_mach'; did you mean 'exact_match'"),
    ({"stage": "sft", "model_name_or_path": "MODEL", "lora_target": "q_proj,qkv"},
     r"stages\[2\]: 'lora_target': \['qkv'\] not found in this model"),
])
def test_a_bad_later_stage_fails_before_stage_one_trains(bad_stage: dict, why: str, tiny_train_overrides: dict,
                                                         no_stage_runs: None) -> None:
    bad = {k: (tiny_train_overrides["model_name_or_path"] if v == "MODEL" else v) for k, v in bad_stage.items()}
    cfg = load_config(None, {**tiny_train_overrides, "stages": [{"stage": "sft"}, {"stage": "sft"}, bad]})
    with pytest.raises(ConfigError, match=why):
        multistage.run_stages(cfg)


def test_lora_target_of_a_continued_adapter_is_not_checked_but_said(tiny_model_dir: Path,
                                                                    tiny_adapters: dict[str, Path],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from tunesmith.model.adapters import apply_finetuning

    cfg = load_config(None, {"dataset": "d", "lora_rank": 16, "lora_target": "q_proj", "lora_dropout": 0.0})
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    peft = apply_finetuning(model, cfg.finetune, adapter_path=str(tiny_adapters["alpha"]))
    assert peft.peft_config["default"].r == 4, "the adapter's own rank trains"
    out = " ".join(capsys.readouterr().out.split())
    assert "lora_rank=16, lora_target=['q_proj'] ignored" in out, out
    assert "lora_rank=4" in out and "lora_dropout" not in out, "only what differs from the adapter is said"


def test_same_lora_keys_as_the_adapter_say_nothing(tiny_model_dir: Path, tiny_adapters: dict[str, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from tunesmith.model.adapters import note_fixed_lora_keys

    cfg = load_config(None, {"dataset": "d", "lora_rank": 4, "lora_alpha": 8, "lora_target": "all"})
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert note_fixed_lora_keys(model, cfg.finetune, str(tiny_adapters["alpha"])) == []
    assert "ignored" not in capsys.readouterr().out


def test_bf16_on_a_trl_stage_is_said_once(capsys: pytest.CaptureFixture[str]) -> None:
    from trl import DPOConfig

    from tunesmith.train.trl_setup import trl_args

    cfg = load_config(None, {"dataset": "d", "stage": "dpo", "bf16": True, "output_dir": "unused"})
    for _ in range(2):
        args = trl_args(cfg, DPOConfig, has_eval=False, n_rows=8)
    assert args.bf16 is False
    out = " ".join(capsys.readouterr().out.split())
    assert out.count("bf16: true is ignored on stage dpo") == 1, out
