"""torch.compile for runs long enough to pay for it.

Most of a short-sequence CPU step is not matrix multiplies but the ~1,000 small element-wise ops per
pass around them (Gemma 3's fp32 RMSNorms, GELU, residual adds, LoRA's scaling and casts), each its
own kernel call. Compiling the decoder layers fuses them. Measured here (Gemma 3 270M, LoRA, bf16,
2 cores, ~300-token steps): 0.74 -> 0.57 s per step. The price is paid once per process: ~35-45 s
the first time (inductor writes and builds C++ kernels) and ~8 s when inductor's on-disk cache
already holds them. ``torch_compile: null`` (auto, the default) therefore compiles only when the run's
trained tokens save more than that; ``true`` / ``false`` force it.

All layers of one model share a compiled graph (parameters are graph inputs), and ``dynamic=True``
keeps one graph for every packed length. Kernels go to inductor's own cache (``TORCHINDUCTOR_CACHE_DIR``,
by default ``/tmp/torchinductor_<user>``); a marker file beside them records that this model shape was
compiled before, which is what "warm" means below (clearing the cache clears the marker too).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import torch

COLD_COMPILE_S = 45.0  # first compile on this machine (measured 34-52 s here)
WARM_COMPILE_S = 10.0  # inductor's cache already has the kernels (measured ~8 s)
SAVED_S_PER_TOKEN = 0.0004  # ~400 -> ~500 trained tokens/s at short sequences (measured)
COMPILED_TIME_SHARE = 0.8  # compiled steps take ~75-80% of eager ones here (0.74 -> 0.57 s)


def cache_dir() -> Path:
    """Where inductor keeps compiled kernels (its own rule: the env variable, else a folder in /tmp)."""
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir as inductor_cache_dir

        return Path(inductor_cache_dir())
    except ImportError:  # another torch layout: the documented default
        import getpass
        import tempfile

        env = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
        return Path(env) if env else Path(tempfile.gettempdir()) / f"torchinductor_{getpass.getuser()}"


def compiler_available() -> bool:
    """inductor's CPU backend builds C++: it needs a compiler on PATH."""
    return any(shutil.which(c) for c in filter(None, (os.environ.get("CXX"), "g++", "c++", "clang++")))


def _marker(config: Any) -> Path:
    text = getattr(config, "text_config", None) or config
    shape = {k: getattr(text, k, None) for k in ("model_type", "hidden_size", "intermediate_size",
                                                  "num_attention_heads", "num_key_value_heads", "head_dim")}
    key = hashlib.sha1(f"{shape}|{torch.__version__}".encode()).hexdigest()[:16]
    return cache_dir() / f"tunesmith-{shape['model_type']}-{key}.compiled"


def compile_seconds(config: Any) -> float:
    """Expected one-time cost: less when this model shape was compiled before (see module doc)."""
    return WARM_COMPILE_S if _marker(config).exists() else COLD_COMPILE_S


def decide(setting: bool | None, config: Any, *, trained_tokens: int, fast_path: bool,
           gradient_checkpointing: bool) -> tuple[bool, str]:
    """Whether to compile the model with this config, and why (printed with the run, so a user can
    see and override the choice)."""
    if setting is False:
        return False, "torch_compile=false"
    if not fast_path or gradient_checkpointing:
        why = "fast_path=false" if not fast_path else "gradient_checkpointing=true"
        if setting:
            return False, f"torch_compile=true is ignored with {why}"
        return False, why
    if not torch.cuda.is_available() and not compiler_available():
        return False, "no C++ compiler on PATH (install g++ to let torch.compile build CPU kernels)"
    if setting:
        return True, "torch_compile=true"
    cost = compile_seconds(config)
    warm = cost == WARM_COMPILE_S
    saved = trained_tokens * SAVED_S_PER_TOKEN
    state = "cached" if warm else "first time"
    if saved > cost:
        return True, f"auto: ~{saved:.0f} s saved over {trained_tokens:,} tokens > ~{cost:.0f} s to compile ({state})"
    return False, f"auto: ~{saved:.0f} s saved over {trained_tokens:,} tokens < ~{cost:.0f} s to compile ({state})"


def compile_decoder_layers(model: Any) -> int:
    """Compile each decoder layer in place (state-dict keys unchanged); returns how many."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else lm.model
    layers = getattr(decoder, "layers", None)
    if not layers:
        return 0
    import torch.fx.experimental._config as fx_config

    # Without this, a packed length that happens to equal a model dimension (640 tokens = Gemma 3
    # 270M's hidden size) is "duck-sized" into that dimension's symbol and specialized: every other
    # length then recompiles (measured: 4 s steps at seq 256 instead of 1 s).
    fx_config.use_duck_shape = False
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)


def mark_compiled(model: Any) -> None:
    """Record that this model shape compiled, so later runs count on inductor's cache."""
    path = _marker(model.config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
