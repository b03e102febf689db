"""Distributed keys checked before launch: DeepSpeed presets and JSON files, FSDP2, trackers, the launch plan
and the torchrun / accelerate command it builds (no processes started here)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from tunesmith.config.load import load_config
from tunesmith.train.distributed import engine_arguments, fast_loss_decision, preflight
from tunesmith.train.engines import PRESETS, check_engines, deepspeed_config, preset_path, zero_stage
from tunesmith.train.launch import FORCE_ENV, LAUNCHED_ENV, plan_launch, printable
from tunesmith.train.trackers import check_trackers, resolve_trackers
from tunesmith.utils.errors import ConfigError, TrainingError

HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None


def _cfg(**keys: object):  # noqa: ANN202 - a Config
    return load_config(None, {"dataset": "x.json", **keys})


def test_presets_are_shipped_json_with_auto_values() -> None:
    for name in PRESETS:
        ds = json.loads(preset_path(name).read_text())
        assert ds["train_micro_batch_size_per_gpu"] == "auto" and ds["gradient_accumulation_steps"] == "auto"
        assert zero_stage(ds) == (2 if name == "z2" else 3)
    assert "offload_optimizer" in deepspeed_config("z3_offload")["zero_optimization"]


@pytest.mark.skipif(not HAS_DEEPSPEED and os.environ.get("TUNESMITH_REQUIRE_DEEPSPEED") != "1",
                    reason="deepspeed not installed (CI checks this in its DeepSpeed step)")
def test_valid_deepspeed_presets_pass_on_cpu_and_offload_is_refused() -> None:
    assert check_engines(_cfg(deepspeed="z2"), cuda=False) == []
    assert check_engines(_cfg(deepspeed="z3"), cuda=False) == []
    problems = check_engines(_cfg(deepspeed="z3_offload"), cuda=False)
    assert len(problems) == 1 and problems[0].startswith("'deepspeed': z3_offload offloads")
    assert "no CUDA GPU" in problems[0]
    assert check_engines(_cfg(deepspeed="z3_offload"), cuda=True) == []


def test_deepspeed_problems_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "ds.json"
    bad.write_text('{"zero_optimization": {"stage": 3,}}')
    [problem] = [p for p in check_engines(_cfg(deepspeed=str(bad)), cuda=False) if "JSON" in p]
    assert problem.startswith("'deepspeed':") and "line 1, column" in problem
    assert "neither a shipped preset" in check_engines(_cfg(deepspeed="z4"), cuda=False)[0]
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({"gradient_accumulation_steps": 8, "zero_optimization": {"stage": 3}}))
    problems = check_engines(_cfg(deepspeed=str(fixed), gradient_accumulation_steps=2, torch_compile=True), cuda=False)
    assert any("sets gradient_accumulation_steps: 8 but gradient_accumulation_steps is 2" in p for p in problems)
    assert any(p.startswith("'torch_compile': ZeRO-3") for p in problems)
    both = check_engines(_cfg(deepspeed="z2", fsdp="full_shard"), cuda=False)
    assert any("'deepspeed' and 'fsdp' are both set" in p for p in both)


def test_missing_deepspeed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    [problem] = check_engines(_cfg(deepspeed="z2"), cuda=False)
    assert "pip install 'tunesmith[deepspeed]'" in problem


def test_fsdp_values() -> None:
    assert check_engines(_cfg(fsdp="full_shard"), cuda=False) == []
    assert "exactly one of" in check_engines(_cfg(fsdp="full_shard shard_grad_op"), cuda=False)[0]
    assert "unknown option" in check_engines(_cfg(fsdp="full_shard hybrid"), cuda=False)[0]
    assert "no CUDA GPU" in check_engines(_cfg(fsdp="full_shard offload"), cuda=False)[0]
    args = engine_arguments(_cfg(fsdp="shard_grad_op offload", report_to="none"), cuda=True)
    assert args["fsdp"] is True and args["fsdp_config"]["version"] == 2
    assert args["fsdp_config"]["reshard_after_forward"] is False and args["fsdp_config"]["cpu_offload"] is True


def test_fast_path_turns_off_with_a_reason_under_every_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fast_loss_decision(_cfg()) == (True, None)
    assert fast_loss_decision(_cfg(fast_path=False)) == (False, None)
    for keys, words in (({"deepspeed": "z3"}, "ZeRO-3"), ({"fsdp": "full_shard"}, "FSDP2")):
        on, why = fast_loss_decision(_cfg(**keys))
        assert not on and words in why
    monkeypatch.setenv("WORLD_SIZE", "2")
    on, why = fast_loss_decision(_cfg())
    assert not on and "DistributedDataParallel" in why


def test_report_to_values_and_missing_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _cfg(report_to="tensorboard,mlflow").train.report_to == ["tensorboard", "mlflow"]
    assert resolve_trackers(_cfg(report_to="none")) == []
    assert resolve_trackers(_cfg()) == (["tensorboard"] if importlib.util.find_spec("tensorboard") else [])
    with pytest.raises(ConfigError, match="unknown tracker"):
        _cfg(report_to="comet")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "swanlab" else real(name, *a))
    [problem] = check_trackers(_cfg(report_to="swanlab"))
    assert problem.startswith("'report_to': swanlab needs the swanlab package") and "tunesmith[trackers]" in problem
    with pytest.raises(ConfigError, match="swanlab needs"):
        preflight(_cfg(report_to="swanlab"), cuda=False)


def _clear_launch_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LOCAL_RANK", "WORLD_SIZE", "NPROC_PER_NODE", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT",
                FORCE_ENV, LAUNCHED_ENV):
        monkeypatch.delenv(var, raising=False)


def test_launch_plan_and_command(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_launch_env(monkeypatch)
    assert plan_launch(_cfg(), gpus=0) is None  # one CPU process: no launcher
    assert plan_launch(_cfg(), gpus=1) is None
    with pytest.raises(ConfigError, match="TUNESMITH_FORCE_LAUNCHER=1"):
        plan_launch(_cfg(nproc_per_node=2), gpus=0)
    plan = plan_launch(_cfg(), gpus=4)  # one process per visible GPU by default
    assert plan is not None and plan.nproc_per_node == 4 and plan.nnodes == 1
    command = printable(plan.command(["cfg.yaml", "learning_rate=1e-4"]))
    assert command.startswith(f"torchrun --nproc_per_node=4 --nnodes=1 --node_rank=0 --master_addr=127.0.0.1 "
                              f"--master_port={plan.master_port} --max_restarts=0 -m tunesmith.cli.main train")
    assert command.endswith("train cfg.yaml learning_rate=1e-4")
    # Multi-node from torchrun's environment variables; keys win over them.
    monkeypatch.setenv("NNODES", "2")
    monkeypatch.setenv("NODE_RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    plan = plan_launch(_cfg(nproc_per_node=8), gpus=8)
    assert (plan.nnodes, plan.node_rank, plan.master_addr, plan.master_port, plan.world_size) == (2, 1, "10.0.0.1",
                                                                                               29500, 16)
    plan = plan_launch(_cfg(nproc_per_node=8, master_port=30000, launcher="accelerate"), gpus=8)
    command = printable(plan.command(["cfg.yaml"]))
    assert command.startswith("accelerate launch --num_processes 16 --num_machines 2 --machine_rank 1 "
                              "--main_process_ip 10.0.0.1 --main_process_port 30000 --multi_gpu")
    with pytest.raises(ConfigError, match="'node_rank': 1 must be below nnodes"):
        plan_launch(_cfg(nnodes=1), gpus=1)
    monkeypatch.delenv("MASTER_ADDR")
    with pytest.raises(ConfigError, match="'master_addr'"):
        plan_launch(_cfg(node_rank=0), gpus=1)
    with pytest.raises(ConfigError, match="'nproc_per_node': 9 processes but 8"):
        plan_launch(_cfg(nproc_per_node=9, nnodes=1, node_rank=0), gpus=8)


def test_engines_always_launch_and_a_launched_process_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_launch_env(monkeypatch)
    with pytest.raises(ConfigError, match="use launcher: torchrun on a machine without CUDA"):
        plan_launch(_cfg(launcher="accelerate", nproc_per_node=2), gpus=0)
    assert plan_launch(_cfg(deepspeed="z3"), gpus=1).world_size == 1  # DeepSpeed needs its launcher even on 1 GPU
    monkeypatch.setenv(FORCE_ENV, "1")
    assert plan_launch(_cfg(), gpus=0).world_size == 1
    monkeypatch.setenv(LAUNCHED_ENV, "1")  # launched, but the launcher set no ranks: never launch again
    with pytest.raises(TrainingError, match="without RANK"):
        plan_launch(_cfg(), gpus=0)
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert plan_launch(_cfg(nproc_per_node=2), gpus=0) is None
