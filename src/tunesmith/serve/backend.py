"""Which backend serves ``chat`` and the API (``serve_backend``), and why, in one line for the user."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tunesmith.config.schema import Config


def choose_backend(cfg: Config, *, chat: bool = False) -> tuple[str, str]:
    """(backend, reason): 'transformers', 'vllm' (the API on a CUDA GPU only) or 'llama.cpp'.

    auto: vLLM for the API on a CUDA GPU when installed; else llama.cpp when model_name_or_path is a .gguf
    file, llama-cpp-python is installed and no adapter is asked for; else transformers."""
    asked = cfg.serve.serve_backend
    if asked == "vllm" and chat:
        return "transformers", "serve_backend vllm serves the API only; chat runs on transformers"
    if asked != "auto":
        return asked, f"serve_backend: {asked}"
    if not chat and importlib.util.find_spec("vllm") is not None:
        import torch

        if torch.cuda.is_available():
            return "vllm", "serve_backend auto: a CUDA GPU and vLLM are present"
    if Path(cfg.model.model_name_or_path).suffix != ".gguf":
        return "transformers", "serve_backend auto: the model is not a .gguf file"
    if cfg.model.adapter_name_or_path or cfg.serve.adapters:
        return "transformers", ("serve_backend auto: adapters are served by transformers (llama.cpp serves one "
                                "merged GGUF)")
    from tunesmith.model import llama_cpp

    if not llama_cpp.available():
        return "transformers", ("serve_backend auto: llama-cpp-python is not installed (the .gguf is converted "
                                "for transformers; scripts/install_llamacpp.sh installs llama.cpp, several times "
                                "faster on one stream)")
    return "llama.cpp", "serve_backend auto: the model is a .gguf file and llama-cpp-python is installed"
