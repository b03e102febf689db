"""End-to-end SFT on the tiny model: loss falls, LoRA weights move, frozen ones do not, resume works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tunesmith.config import load_config
from tunesmith.train.sft import run_sft
from tunesmith.utils.errors import ConfigError, TrainingError


def _adapter_tensors(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run / "adapter_model.safetensors")


def test_lora_sft_lowers_loss_and_saves_everything(tiny_train_overrides: dict) -> None:
    cfg = load_config(None, {**tiny_train_overrides, "num_train_epochs": 8, "lora_rank": 16})
    result = run_sft(cfg)
    out = result.output_dir
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "tunesmith_run.yaml",
                 "train_log.jsonl", "loss.png", "summary.json", "generation_config.json"):
        assert (out / name).exists(), name
    m = result.metrics
    # LoRA on a randomly initialised 2-layer model learns slowly; full tuning is checked below.
    assert m["final_loss"] < m["first_loss"] - 0.15, (m["first_loss"], m["final_loss"])
    assert m["final_eval_loss"] is not None
    assert not list(out.glob("*.bin")), "only safetensors are written"
    gen = json.loads((out / "generation_config.json").read_text())
    assert 5 in gen["eos_token_id"] and 1 in gen["eos_token_id"], "end_of_turn and eos both stop generation"
    lora_b = [v for k, v in _adapter_tensors(out).items() if "lora_B" in k]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b), "LoRA B matrices start at zero and must move"


@pytest.mark.parametrize("variant", [{"use_rslora": True}, {"use_dora": True}, {"lora_target": "q_proj,v_proj"}])
def test_lora_variants_train(tiny_train_overrides: dict, variant: dict) -> None:
    cfg = load_config(None, {**tiny_train_overrides, **variant, "max_steps": 3, "eval_dataset": ""})
    result = run_sft(cfg)
    assert result.metrics["steps"] == 3
    cfg_json = json.loads((result.output_dir / "adapter_config.json").read_text())
    if "use_rslora" in variant:
        assert cfg_json["use_rslora"] is True
    if "use_dora" in variant:
        assert cfg_json["use_dora"] is True
    if "lora_target" in variant:
        assert sorted(cfg_json["target_modules"]) == ["q_proj", "v_proj"]


def _expected_trainable(kind: str, name: str) -> bool:
    """Whether parameter ``name`` (as named in memory) should train for each case below."""
    if kind == "lora-all":
        return "lora_" in name
    if kind == "lora-qv":
        return "lora_" in name and (".q_proj." in name or ".v_proj." in name)
    if kind == "freeze":  # freeze_trainable_layers=1 of 2: the last layer and the final norm
        return name.startswith("model.layers.1.") or name == "model.norm.weight"
    return True  # full


CASES = {
    "lora-all": {"finetuning_type": "lora", "lora_target": "all"},
    "lora-qv": {"finetuning_type": "lora", "lora_target": "q_proj,v_proj"},
    "freeze": {"finetuning_type": "freeze", "freeze_trainable_layers": 1},
    "full": {"finetuning_type": "full"},
}


@pytest.mark.parametrize("kind", list(CASES))
def test_only_the_intended_parameters_train_and_frozen_ones_stay_the_same(
        kind: str, tiny_train_overrides: dict, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TRL's standard check, on the model run_sft really trains: the parameters meant to train have
    requires_grad and changed; every other parameter is bit-for-bit what it was before training."""
    from safetensors.torch import load_file

    from tunesmith.train import sft

    seen: dict = {}
    real_build_trainer = sft.build_trainer

    def recording_build_trainer(cfg, model, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen["model"] = model
        seen["before"] = {n: p.detach().clone() for n, p in model.named_parameters()}
        return real_build_trainer(cfg, model, *args, **kwargs)

    monkeypatch.setattr(sft, "build_trainer", recording_build_trainer)
    cfg = load_config(None, {**tiny_train_overrides, **CASES[kind], "max_steps": 3, "eval_dataset": "",
                             "test_dataset": ""})
    out = run_sft(cfg).output_dir
    params = dict(seen["model"].named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    want = {n for n in params if _expected_trainable(kind, n)}
    assert trainable == want, (sorted(trainable ^ want))[:10]
    if kind.startswith("lora"):
        targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
        hit = {n.split(".lora_")[0].rsplit(".", 1)[1] for n in trainable}
        assert hit == (targets if kind == "lora-all" else {"q_proj", "v_proj"}), hit
    changed = {n for n, p in params.items() if not torch.equal(p.detach(), seen["before"][n])}
    assert changed == trainable, {"frozen but changed": sorted(changed - trainable)[:5],
                                  "trainable but unchanged": sorted(trainable - changed)[:5]}
    base = load_file(tiny_model_dir / "model.safetensors")
    if kind.startswith("lora"):  # only the adapter is saved, and it is exactly the trained tensors
        saved = load_file(out / "adapter_model.safetensors")
        assert len(saved) == len(trainable) and all("lora_" in k for k in saved)
    else:  # the saved weights differ from the base exactly where training happened
        saved = load_file(out / "model.safetensors")
        assert saved.keys() == base.keys()
        assert {k for k in saved if not torch.equal(saved[k], base[k])} == trainable


def _log_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_resume_from_checkpoint_continues_where_it_stopped(tiny_train_overrides: dict) -> None:
    # A 6-step run, then as if killed after logging step 6 but before checkpoint-6 was written: resuming
    # from checkpoint-4 must train steps 5 and 6 only, with the same weights, optimizer, learning rate
    # and batches as the run that was not interrupted (so the same losses and the same adapter).
    import shutil

    base = {**tiny_train_overrides, "max_steps": 6, "save_steps": 2, "eval_dataset": ""}
    out = Path(base["output_dir"])
    run_sft(load_config(None, base))
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    straight_rows = _log_rows(out)
    straight_loss = {r["step"]: r["loss"] for r in straight_rows if "loss" in r}
    straight_adapter = _adapter_tensors(out)
    shutil.rmtree(out / "checkpoint-6")

    resumed = run_sft(load_config(None, {**base, "resume_from_checkpoint": "last"}))
    assert resumed.metrics["steps"] == 6
    rows = [r for r in _log_rows(out) if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6], "steps 1-4 were not trained again"
    assert rows[:4] == [r for r in straight_rows if "loss" in r][:4], "the rows of steps 1-4 are the first run's"
    for step in (5, 6):
        assert rows[step - 1]["loss"] == pytest.approx(straight_loss[step], abs=1e-4), (step, rows, straight_loss)
    adapter = _adapter_tensors(out)
    assert adapter.keys() == straight_adapter.keys()
    for name, tensor in adapter.items():
        torch.testing.assert_close(tensor, straight_adapter[name], atol=1e-5, rtol=1e-4, msg=name)


def test_existing_output_dir_is_protected(tiny_train_overrides: dict) -> None:
    out = Path(tiny_train_overrides["output_dir"])
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("user data")
    with pytest.raises(ConfigError, match="overwrite_output_dir"):
        run_sft(load_config(None, {**tiny_train_overrides, "max_steps": 1}))
    assert (out / "keep.txt").read_text() == "user data"


def test_all_labels_masked_fails_clearly(tiny_train_overrides: dict) -> None:
    cfg = load_config(None, {**tiny_train_overrides, "cutoff_len": 8, "max_steps": 1})
    with pytest.raises(TrainingError, match="labels masked"):
        run_sft(cfg)
    assert not Path(tiny_train_overrides["output_dir"]).exists(), "a failed validation writes nothing"
