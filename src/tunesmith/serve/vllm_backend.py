"""vLLM as the backend on a CUDA GPU (guarded: imported only when vLLM serves; not runnable on a CPU).

vLLM already ships an OpenAI-compatible server with continuous batching and multi-LoRA. tunesmith
hands it the same choices its own server takes — the base model, the adapters by name, host, port,
API key — and the training template as the chat template, so a served adapter sees the token layout
it was trained on.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tunesmith.config.schema import Config
from tunesmith.data.templates import to_jinja
from tunesmith.serve.engine import parse_adapters
from tunesmith.utils.lazy import require


def vllm_command(cfg: Config, model_path: str, template_file: Path) -> list[str]:
    """The ``vllm serve`` command line for this config."""
    adapters = parse_adapters(cfg.serve.adapters)
    if cfg.model.adapter_name_or_path:
        adapters = {Path(cfg.model.adapter_name_or_path).name: cfg.model.adapter_name_or_path, **adapters}
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_path,
           "--host", cfg.serve.host, "--port", str(cfg.serve.port), "--chat-template", str(template_file),
           "--served-model-name", cfg.serve.served_model_name or Path(cfg.model.model_name_or_path).name,
           "--max-num-seqs", str(max(cfg.serve.max_batch_size, 8))]
    if adapters:
        cmd += ["--enable-lora", "--lora-modules", *[f"{n}={p}" for n, p in adapters.items()]]
    if cfg.serve.api_key:
        cmd += ["--api-key", cfg.serve.api_key]
    return cmd


def serve_with_vllm(cfg: Config) -> int:
    """Run vLLM's OpenAI server in the foreground; returns its exit code."""
    require("vllm", package="vllm")
    from tunesmith.model.load import load_tokenizer, resolve_model_path
    from tunesmith.train.resolve import resolve_template

    model_path = resolve_model_path(cfg.model.model_name_or_path, cfg.model.cache_dir)
    template = resolve_template(cfg, model_path, load_tokenizer(model_path))
    with tempfile.NamedTemporaryFile("w", suffix=".jinja", delete=False) as f:
        f.write(to_jinja(template))
    return subprocess.call(vllm_command(cfg, model_path, Path(f.name)))
