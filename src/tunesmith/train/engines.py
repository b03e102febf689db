"""Sharding engines by name: DeepSpeed ZeRO presets (shipped JSON) and FSDP2, checked before launch.

``deepspeed: z2 | z3 | z3_offload | PATH.json`` hands the model to DeepSpeed through the Trainer; the
presets are in the shape LLaMA-Factory and axolotl ship, with ``auto`` values that the Trainer fills
from tunesmith's keys (batch size, accumulation, clipping, precision). ``fsdp: full_shard [offload]``
(or ``shard_grad_op``) turns on PyTorch FSDP2 through the Trainer / accelerate, wrapping each decoder
layer (the model's ``_no_split_modules``). Every problem is found here, named by key, before any
process starts or any model loads.
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from tunesmith.config.schema import Config

PRESETS = ("z2", "z3", "z3_offload")
FSDP_STRATEGIES = ("full_shard", "shard_grad_op")
FSDP_OPTIONS = ("offload", "auto_wrap")


def preset_path(name: str) -> Path:
    """The shipped JSON of a preset."""
    return Path(str(resources.files("tunesmith.train") / "presets" / f"{name}.json"))


@lru_cache(maxsize=8)
def _read(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def deepspeed_source(value: str) -> Path:
    return preset_path(value) if value in PRESETS else Path(value).expanduser()


def deepspeed_config(value: str) -> dict[str, Any]:
    """The DeepSpeed config dict for a preset name or a JSON path (validated by ``check_engines``)."""
    return dict(_read(str(deepspeed_source(value))))


def zero_stage(ds: dict[str, Any]) -> int:
    return int((ds.get("zero_optimization") or {}).get("stage", 0))


def _offloads(ds: dict[str, Any]) -> list[str]:
    zero = ds.get("zero_optimization") or {}
    return [f"{key}.device={zero[key].get('device')}" for key in ("offload_optimizer", "offload_param")
            if isinstance(zero.get(key), dict) and zero[key].get("device") not in (None, "none")]


def fsdp_arguments(value: str) -> dict[str, Any]:
    """TrainingArguments' ``fsdp`` / ``fsdp_config`` for FSDP2 from e.g. 'full_shard offload'."""
    words = value.split()
    return {"fsdp": True, "fsdp_config": {
        "version": 2,
        "reshard_after_forward": "shard_grad_op" not in words,
        "cpu_offload": "offload" in words,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",  # the model's _no_split_modules: one unit per decoder layer
        "state_dict_type": "FULL_STATE_DICT",  # checkpoints and the saved adapter stay ordinary HF files
    }}


def _deepspeed_problems(cfg: Config, *, cuda: bool) -> list[str]:
    value = cfg.distributed.deepspeed or ""
    path = deepspeed_source(value)
    if value not in PRESETS and not path.is_file():
        return [f"'deepspeed': {value!r} is neither a shipped preset ({', '.join(PRESETS)}) nor a JSON file"]
    try:
        ds = deepspeed_config(value)
    except (ValueError, OSError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        return [f"'deepspeed': {str(path)!r} is not readable JSON{where}: {exc}"]
    if not isinstance(ds, dict):
        return [f"'deepspeed': {str(path)!r} must hold a JSON object"]
    problems = []
    if importlib.util.find_spec("deepspeed") is None:
        problems.append("'deepspeed': the deepspeed package is not installed; pip install 'tunesmith[deepspeed]'")
    stage = zero_stage(ds)
    if stage not in (0, 1, 2, 3):
        problems.append(f"'deepspeed': zero_optimization.stage is {stage} in {path.name}; DeepSpeed has stages 0-3")
    if not cuda and (off := _offloads(ds)):
        problems.append(f"'deepspeed': {value} offloads from GPU memory ({', '.join(off)}) and this machine has no "
                        "CUDA GPU; use z2 or z3 here, or run it on a GPU machine")
    if not cuda and (ds.get("fp16") or {}).get("enabled") is True:
        problems.append(f"'deepspeed': {path.name} sets fp16.enabled: true, which needs a CUDA GPU; set it to auto")
    t = cfg.train
    pairs = (("gradient_accumulation_steps", t.gradient_accumulation_steps, "gradient_accumulation_steps"),
             ("train_micro_batch_size_per_gpu", t.per_device_train_batch_size, "per_device_train_batch_size"),
             ("gradient_clipping", t.max_grad_norm, "max_grad_norm"))
    for key, ours, name in pairs:
        theirs = ds.get(key, "auto")
        if theirs != "auto" and theirs != ours:
            problems.append(f"'deepspeed': {path.name} sets {key}: {theirs} but {name} is {ours}; set it to \"auto\" "
                            f"(filled from {name}) or make them equal")
    if stage == 3:
        if t.torch_compile:
            problems.append("'torch_compile': ZeRO-3 gathers each layer's weights as it runs, which torch.compile "
                            "cannot trace; set torch_compile: false (or use z2)")
        bits = getattr(cfg.model, "quantization_bit", None) or getattr(cfg.finetune, "quantization_bit", None)
        if bits:
            problems.append(f"'quantization_bit': {bits}-bit weights cannot be partitioned by ZeRO-3; use z2 (or "
                            "fsdp) with QLoRA, or drop quantization_bit")
    return problems


def _fsdp_problems(cfg: Config, *, cuda: bool) -> list[str]:
    words = (cfg.distributed.fsdp or "").split()
    problems = []
    unknown = [w for w in words if w not in FSDP_STRATEGIES + FSDP_OPTIONS]
    if unknown:
        problems.append(f"'fsdp': unknown option(s) {unknown}; write full_shard or shard_grad_op, optionally "
                        "followed by offload (e.g. 'full_shard offload')")
    if sum(w in FSDP_STRATEGIES for w in words) != 1:
        problems.append(f"'fsdp': {cfg.distributed.fsdp!r} must name exactly one of {', '.join(FSDP_STRATEGIES)}")
    if "offload" in words and not cuda:
        problems.append("'fsdp': offload moves parameters from GPU memory to CPU memory and this machine has no "
                        "CUDA GPU; drop offload here")
    return problems


def check_engines(cfg: Config, *, cuda: bool) -> list[str]:
    """Every problem with the distributed keys, named by key (empty when the run can start)."""
    d = cfg.distributed
    problems: list[str] = []
    if d.deepspeed and d.fsdp:
        problems.append("'deepspeed' and 'fsdp' are both set; they are two ways to shard the same model: keep one")
    if d.deepspeed:
        problems += _deepspeed_problems(cfg, cuda=cuda)
    if d.fsdp:
        problems += _fsdp_problems(cfg, cuda=cuda)
    return problems
