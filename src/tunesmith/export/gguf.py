"""Write llama.cpp's GGUF (f16 or q8_0) from a merged Hugging Face folder, with the ``gguf`` package;
k-quants (q4_k_m, q5_k_m, q6_k) through llama.cpp's own quantizer when llama-cpp-python is installed.

Supported architectures: Gemma 3 (text), Llama, Mistral (as llama.cpp's llama), Qwen 2, Qwen 3 and
Phi-3 — the families tunesmith has chat templates for (tests/integration/test_architectures.py runs
each). What each needs beyond renaming tensors follows llama.cpp's ``convert_hf_to_gguf.py``: Gemma
stores RMSNorm weights as ``1 + w``; Llama's (and Mistral's) q/k projections are permuted for
llama.cpp's rotary layout; Qwen 3 and Gemma 3 write their head size. The tokenizer goes in as
metadata (vocabulary, merges, token types, special ids), with the chat template and the end-of-turn
id (``eot_token_id``) so llama.cpp stops where training did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from tunesmith.utils.errors import ModelLoadError

GgufType = Literal["f16", "q8_0"]
# k-quants: written as f16 by us, then quantized by llama.cpp itself (llama_model_quantize), so the file
# is what llama.cpp's own tools would make (its mixes, its fallbacks for rows not a multiple of 256).
LLAMA_CPP_QUANTS = {"q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
                    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K"}
# model_type (config.json) -> GGUF architecture name
ARCHITECTURES = {"gemma3_text": "gemma3", "gemma3": "gemma3", "llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3",
                 "mistral": "llama", "phi3": "phi3"}
# Gemma 3 settings that transformers' GGUF loader and llama.cpp take as fixed for the family; a model
# that differs would load back as a different model, so it is refused up front.
GEMMA3_FIXED = {"query_pre_attn_scalar": 256, "sliding_window_pattern": 6, "sliding_rope_theta": 10000.0}


def _rope_theta(config: dict[str, Any], kind: str = "full_attention") -> float:
    rope = config.get("rope_parameters") or {}
    if kind in rope:
        rope = rope[kind]
    return float(rope.get("rope_theta", config.get("rope_theta", 10000.0)))


def gguf_problems(config: dict[str, Any]) -> list[str]:
    """Why this model cannot be written as a GGUF that loads back as the same model ([] if it can)."""
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        return [f"model_type {model_type!r} is not supported for GGUF export (supported: "
                f"{', '.join(sorted(set(ARCHITECTURES)))})"]
    problems = []
    heads = int(config.get("num_attention_heads") or 1)
    if model_type == "qwen3" and int(config.get("head_dim") or config.get("hidden_size", 0) // heads) != 128:
        problems.append("head_dim is not 128: transformers' GGUF reader assumes Qwen 3's 128")
    if model_type == "mistral" and config.get("sliding_window"):
        problems.append(f"sliding_window {config['sliding_window']} is not carried by llama-architecture GGUF files")
    rope = config.get("rope_parameters") or {}
    for part in (rope.values() if "full_attention" in rope else [rope]):
        if isinstance(part, dict) and part.get("rope_type", "default") != "default":
            problems.append(f"rope scaling {part.get('rope_type')!r} is not written to GGUF by tunesmith")
    if ARCHITECTURES[model_type] == "gemma3":
        n = int(config["num_hidden_layers"])
        expected = ["full_attention" if (i + 1) % GEMMA3_FIXED["sliding_window_pattern"] == 0 else "sliding_attention"
                    for i in range(n)]
        if config.get("layer_types") and config["layer_types"] != expected:
            problems.append("layer_types differ from Gemma 3's pattern (5 sliding, 1 full)")
        if config.get("query_pre_attn_scalar", 256) != GEMMA3_FIXED["query_pre_attn_scalar"]:
            problems.append(f"query_pre_attn_scalar is {config.get('query_pre_attn_scalar')}, GGUF readers assume 256")
        if _rope_theta(config, "sliding_attention") != GEMMA3_FIXED["sliding_rope_theta"]:
            problems.append("the sliding-window rope theta differs from 10000")
        if config.get("final_logit_softcapping") or config.get("attn_logit_softcapping"):
            problems.append("logit soft-capping is not carried by Gemma 3 GGUF files")
    return problems


def _hparams(writer: Any, arch: str, config: dict[str, Any]) -> None:
    heads = int(config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or config["hidden_size"] // heads)
    writer.add_context_length(int(config.get("max_position_embeddings", 4096)))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_rope_freq_base(_rope_theta(config))
    if arch in ("gemma3", "qwen3"):  # head_dim is its own setting there, not hidden_size / heads
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    if arch == "gemma3":
        writer.add_sliding_window(int(config.get("sliding_window") or 512))
    else:
        writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(int(config["vocab_size"]))


def _llama_permute(w: Any, n_head: int) -> Any:
    """llama.cpp's rotary layout for q/k rows (undone by transformers' GGUF loader)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensors(arch: str, config: dict[str, Any], state: dict[str, Any]) -> list[tuple[str, Any]]:
    """(GGUF name, float32 numpy array) for every weight, with the family's transformations."""
    import gguf

    arch_id = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    names = gguf.get_tensor_name_map(arch_id, int(config["num_hidden_layers"]))
    tied = config.get("tie_word_embeddings", False)
    out = []
    for hf_name, tensor in state.items():
        if tied and hf_name == "lm_head.weight":
            continue
        base, _, suffix = hf_name.rpartition(".")
        gguf_name = names.get_name(base)
        if gguf_name is None:
            raise ModelLoadError(f"GGUF export: no GGUF name for tensor {hf_name!r} ({arch})")
        data = tensor.float().numpy()
        if arch == "gemma3" and hf_name.endswith("norm.weight"):
            data = data + 1.0
        if arch == "llama" and base.endswith("self_attn.q_proj"):
            data = _llama_permute(data, int(config["num_attention_heads"]))
        if arch == "llama" and base.endswith("self_attn.k_proj"):
            data = _llama_permute(data, int(config.get("num_key_value_heads") or config["num_attention_heads"]))
        out.append((f"{gguf_name}.{suffix}", data))
    return out


def _encode(data: Any, qtype: GgufType) -> tuple[Any, Any]:
    """(array to write, GGML type): 1-D tensors stay F32, as llama.cpp writes them."""
    import gguf
    import numpy as np

    if data.ndim < 2:
        return data.astype(np.float32), gguf.GGMLQuantizationType.F32
    if qtype == "q8_0" and data.shape[-1] % 32 == 0:
        return gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0
    return data.astype(np.float16), gguf.GGMLQuantizationType.F16


def _pre_tokenizer_name(tokenizer_json: dict[str, Any]) -> str:
    """The llama.cpp pre-tokenizer whose split regex matches this tokenizer's (else GPT-2's)."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

    text = json.dumps(tokenizer_json.get("pre_tokenizer"))
    for name, regex in GGUF_PRE_TOKENIZER_SPLITS.items():
        if json.dumps(regex)[1:-1] in text:
            return name
    return "gpt-2"


def _tokenizer(writer: Any, tokenizer: Any, tokenizer_json: dict[str, Any], stop_ids: list[int]) -> None:
    """Vocabulary, merges, token types and special ids in llama.cpp's keys."""
    model = tokenizer_json.get("model", {})
    if model.get("type") != "BPE":
        raise ModelLoadError(f"GGUF export: tokenizer model {model.get('type')!r} is not supported (BPE only)")
    vocab = tokenizer.get_vocab()
    tokens = [""] * len(vocab)
    for tok, i in vocab.items():
        if i < len(tokens):
            tokens[i] = tok
    added = {t["id"]: t for t in tokenizer_json.get("added_tokens", [])}
    byte_level = "ByteLevel" in json.dumps(tokenizer_json.get("decoder"))
    types, scores = [], []
    for i, tok in enumerate(tokens):
        if i in added:
            types.append(3 if added[i].get("special") else 4)  # CONTROL / USER_DEFINED
        elif not byte_level and tok.startswith("<0x") and tok.endswith(">") and len(tok) == 6:
            types.append(6)  # BYTE
        else:
            types.append(1)  # NORMAL
        scores.append(0.0 if types[-1] == 6 else -1000.0 if types[-1] == 3 else float(-i))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    if byte_level:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(_pre_tokenizer_name(tokenizer_json))
    else:  # sentencepiece-style BPE (Gemma): llama.cpp stores runs of spaces as spaces
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        tokens = [" " * len(t) if len(t) > 1 and set(t) == {"\u2581"} else t for t in tokens]
        writer.add_add_space_prefix(False)
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    if merges:
        writer.add_token_merges(merges)
    for setter, value in ((writer.add_bos_token_id, tokenizer.bos_token_id),
                          (writer.add_eos_token_id, tokenizer.eos_token_id),
                          (writer.add_unk_token_id, tokenizer.unk_token_id),
                          (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if value is not None:
            setter(int(value))
    eot = [i for i in stop_ids if i != tokenizer.eos_token_id]
    if eot:
        writer.add_eot_token_id(int(eot[0]))
    probe = tokenizer.encode("a")
    writer.add_add_bos_token(bool(probe) and probe[0] == tokenizer.bos_token_id)
    writer.add_add_eos_token(False)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


def write_gguf(model_dir: Path, out_file: Path, qtype: GgufType, *, stop_ids: list[int],
               name: str | None = None) -> Path:
    """Write ``model_dir`` (a merged HF folder) as one GGUF file; returns ``out_file``."""
    import gguf
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from tunesmith.utils.io import atomic_path

    config = json.loads((model_dir / "config.json").read_text())
    problems = gguf_problems(config)
    if problems:
        raise ModelLoadError("GGUF export: " + "; ".join(problems),
                             hint="export without GGUF (export_quantization: none or int8), or convert with "
                             "llama.cpp's own converter")
    arch = ARCHITECTURES[config["model_type"]]
    state: dict[str, Any] = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        state.update(load_file(f))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer_json = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    with atomic_path(out_file) as tmp:
        writer = gguf.GGUFWriter(tmp, arch)
        writer.add_type(gguf.GGUFType.MODEL)
        # Mistral goes in as llama.cpp's llama architecture (as its converter writes it), and loads back as
        # Llama: the same model when there is no sliding window (gguf_problems refuses one)
        writer.add_name(name or model_dir.name)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if qtype == "q8_0" else gguf.LlamaFileType.MOSTLY_F16)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _hparams(writer, arch, config)
        _tokenizer(writer, tokenizer, tokenizer_json, stop_ids)
        for tname, data in _tensors(arch, config, state):
            arr, ggml_type = _encode(data, qtype)
            writer.add_tensor(tname, arr, raw_dtype=ggml_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return out_file


def gguf_tokenizer_extras(path: Path) -> tuple[str | None, dict[str, int], list[int]]:
    """What llama.cpp reads from a GGUF beyond the weights: the chat template, the special token ids, and
    the ids that end generation (EOS and EOT). transformers' GGUF loader drops the template, and the
    special tokens of a byte-level vocabulary, so the checks take them from the file."""
    from transformers.integrations.gguf.reader import read_gguf_metadata

    meta, _ = read_gguf_metadata(str(path))  # large arrays (the vocabulary) are left unread

    def read_id(key: str) -> int | None:
        value = meta.get(f"tokenizer.ggml.{key}")
        return int(value) if value is not None else None

    special = {name: i for name, key in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"),
                                          ("unk_token", "unknown_token_id"), ("pad_token", "padding_token_id"))
               if (i := read_id(key)) is not None}
    stop_ids = [i for i in (read_id("eos_token_id"), read_id("eot_token_id")) if i is not None]
    template = meta.get("tokenizer.chat_template")
    return (str(template) if template is not None else None), special, stop_ids


def quantize_with_llama_cpp(f16_file: Path, out_file: Path, qtype: str, *, threads: int | None = None) -> Path:
    """Quantize an f16 GGUF with llama.cpp's quantizer (``llama_model_quantize``); returns ``out_file``."""
    import ctypes

    from tunesmith.utils.hardware import physical_cores
    from tunesmith.utils.io import atomic_path
    from tunesmith.utils.lazy import require

    llama_cpp = require("llama_cpp", package="llama-cpp-python")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, LLAMA_CPP_QUANTS[qtype])
    params.nthread = threads or physical_cores()
    with atomic_path(out_file) as tmp:
        rc = llama_cpp.llama_model_quantize(str(f16_file).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0:
            raise ModelLoadError(f"llama.cpp could not quantize {f16_file.name} to {qtype} (llama_model_quantize "
                                 f"returned {rc})", hint="export gguf-f16 or gguf-q8_0 instead, or update "
                                 "llama-cpp-python")
    return out_file
