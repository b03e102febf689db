"""Quantized copies of a merged model: int8 weight-only for CPUs, GPTQ / AWQ 4-bit for GPUs.

int8 uses torchao's weight-only int8 through transformers' ``TorchAoConfig``: measured here against
optimum-quanto (see the README), torchao was faster on this CPU, agreed as well with the fp32 model,
and — unlike quanto through transformers — saves to safetensors that plain
``AutoModelForCausalLM.from_pretrained(folder)`` loads back quantized (with torchao installed).
The output layer stays in full precision: it is tied to the embedding, and rounding it moved the
most greedy tokens.

GPTQ and AWQ need a CUDA GPU and their own libraries (gptqmodel; llmcompressor); they are imported
only when asked for and cannot run on a CPU-only machine.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tunesmith.utils.errors import ConfigError
from tunesmith.utils.lazy import require

# Files copied from the merged folder so a quantized folder is complete on its own.
SIDE_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
              "generation_config.json", "tokenizer.model")


def copy_side_files(src: Path, dst: Path) -> None:
    for name in SIDE_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)


def int8_config() -> Any:
    """transformers' quantization config for torchao int8 weight-only (output layer kept)."""
    from transformers import TorchAoConfig

    quant = require("torchao.quantization", extra="quant", package="torchao")
    return TorchAoConfig(quant.Int8WeightOnlyConfig(), modules_to_not_convert=["lm_head"])


def write_int8(merged_dir: Path, out: Path) -> Path:
    """Quantize the merged folder's linear weights to int8 and save a loadable folder at ``out``."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32, quantization_config=int8_config())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    copy_side_files(merged_dir, out)
    return out


def _need_gpu(method: str) -> None:
    import torch

    if not torch.cuda.is_available():
        raise ConfigError([f"'export_quantization': {method} needs a CUDA GPU (its kernels and calibration run "
                           "there); on a CPU use int8 or gguf-q8_0"])


def write_gptq(merged_dir: Path, out: Path, calibration: list[str], *, bits: int = 4) -> Path:
    """GPTQ 4-bit for vLLM and other GPU engines, through gptqmodel (GPU only; not runnable here)."""
    _need_gpu("gptq")
    gptqmodel = require("gptqmodel", package="gptqmodel")
    model = gptqmodel.GPTQModel.load(str(merged_dir), gptqmodel.QuantizeConfig(bits=bits, group_size=128))
    model.quantize(calibration)
    model.save(str(out))
    copy_side_files(merged_dir, out)
    return out


def write_awq(merged_dir: Path, out: Path, calibration: list[str], *, bits: int = 4) -> Path:
    """AWQ 4-bit (W4A16) through llmcompressor (GPU only; not runnable here)."""
    _need_gpu("awq")
    llmc = require("llmcompressor", package="llmcompressor")
    awq = require("llmcompressor.modifiers.awq", package="llmcompressor")
    from datasets import Dataset

    recipe = [awq.AWQModifier(ignore=["lm_head"], scheme=f"W{bits}A16", targets=["Linear"])]
    llmc.oneshot(model=str(merged_dir), dataset=Dataset.from_dict({"text": calibration}), recipe=recipe,
                 output_dir=str(out), num_calibration_samples=len(calibration))
    copy_side_files(merged_dir, out)
    return out
