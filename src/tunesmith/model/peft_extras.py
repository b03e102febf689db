"""QLoRA loading and the LoRA variants peers offer, mapped onto bitsandbytes and peft.

- ``quantization_bit`` 4 / 8: the frozen base loads through bitsandbytes (``BitsAndBytesConfig``) and
  peft's ``prepare_model_for_kbit_training`` readies it (norms and head in fp32, input gradients on);
  the LoRA matrices train in full precision on top. A QLoRA adapter is an ordinary LoRA adapter: merging
  and export load the *unquantized* base and merge into it (LLaMA-Factory's and the notes' flow).
- ``init_lora_weights`` pissa / olora / loftq and ``pissa_iter``: peft's initializations. PiSSA and
  OLoRA move the principal part of each weight into the adapter and leave the residual in the base;
  at the end of the run the adapter is converted into an ordinary LoRA (twice the rank) for the
  original base (``model.adapters.convert_rewriting_adapter``). LoftQ (with a 4-bit base) only sets
  the LoRA matrices, against each weight's quantization error.
- ``new_special_tokens``: added to the tokenizer, the embeddings resized with the new rows set to the
  mean of the old ones (the usual choice: a new token starts as an average token, not noise).
"""

from __future__ import annotations

from typing import Any

from tunesmith.config.schema import FinetuneArgs
from tunesmith.utils.console import console
from tunesmith.utils.lazy import require


def bnb_config(ft: FinetuneArgs, compute_dtype: Any) -> Any:
    """transformers' BitsAndBytesConfig for quantization_bit / quantization_type / double_quantization."""
    require("bitsandbytes", extra="qlora")
    from transformers import BitsAndBytesConfig

    if ft.quantization_bit == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=ft.quantization_type,
                              bnb_4bit_use_double_quant=ft.double_quantization,
                              bnb_4bit_compute_dtype=compute_dtype, bnb_4bit_quant_storage="uint8")


def prepare_quantized(model: Any, *, gradient_checkpointing: bool, dtype: Any) -> Any:
    """peft's k-bit preparation (everything frozen, the unquantized weights in fp32, input grads on), then
    the frozen embeddings and output layer back to ``dtype``: peft's fp32 copy of them doubled their
    memory (+335 MB for Gemma 3 270M's 262k x 640 embedding, more than 4 bits saved on its layers) and
    nothing trains them; the small norms stay fp32."""
    import torch
    from peft import prepare_model_for_kbit_training

    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                            gradient_checkpointing_kwargs={"use_reentrant": False})
    if dtype != torch.float32:
        for emb in {model.get_input_embeddings(), model.get_output_embeddings()} - {None}:
            emb.to(dtype)
    return model


def init_lora_kwargs(init: str, pissa_iter: int) -> dict[str, Any]:
    """LoraConfig keywords for an initialization name."""
    if init == "default":
        return {}
    if init == "pissa":
        return {"init_lora_weights": "pissa" if pissa_iter < 0 else f"pissa_niter_{pissa_iter}"}
    if init == "loftq":  # applied after the adapter exists (apply_loftq): the base stays the original's 4 bits
        return {}
    return {"init_lora_weights": init}  # gaussian, olora


def apply_loftq(peft_model: Any) -> None:
    """LoftQ on a 4-bit base: set each LoRA pair so base + BA approximates the unquantized weight
    (peft's replace_lora_weights_loftq reads the original weights from the model's safetensors)."""
    import torch
    from peft import replace_lora_weights_loftq

    from tunesmith.utils.errors import ConfigError

    if not torch.cuda.is_available():  # peft's LoftQ runs its quantizer on the GPU ("Torch not compiled with CUDA")
        raise ConfigError(["'init_lora_weights': loftq needs a CUDA GPU (peft computes it there); use default, "
                           "gaussian, pissa or olora on this machine"])
    folder = peft_model.get_base_model().config._name_or_path  # a local folder: resolve_model_path made it one
    replace_lora_weights_loftq(peft_model, model_path=folder)
    console.print("init_lora_weights: loftq (LoRA set against the 4-bit rounding error of each weight)")


def add_tokens_to_tokenizer(tokenizer: Any, tokens: list[str]) -> int:
    """Add ``tokens`` as special tokens (kept whole by tokenization); returns how many were new."""
    if not tokens:
        return 0
    return tokenizer.add_special_tokens({"additional_special_tokens": tokens}, replace_extra_special_tokens=False)


def add_special_tokens(model: Any, tokenizer: Any, tokens: list[str]) -> int:
    """Add ``tokens`` as special tokens and resize the embeddings (new rows = mean row); returns how many."""
    import torch

    added = add_tokens_to_tokenizer(tokenizer, tokens)
    if not added:
        return 0
    old = model.get_input_embeddings().weight.shape[0]
    new = len(tokenizer)
    if new > old:
        model.resize_token_embeddings(new, mean_resizing=False)
        with torch.no_grad():
            for emb in {model.get_input_embeddings(), model.get_output_embeddings()} - {None}:
                emb.weight[old:] = emb.weight[:old].mean(dim=0, keepdim=True)
    console.print(f"new_special_tokens: added {added} token(s) ({', '.join(tokens)}); embeddings {old} -> "
                  f"{model.get_input_embeddings().weight.shape[0]} rows")
    return added


def embedding_modules(model: Any) -> list[str]:
    """Short names of the input and output embedding modules (trained in full beside LoRA for new tokens)."""
    names = []
    for target in (model.get_input_embeddings(), model.get_output_embeddings()):
        for name, module in model.named_modules():
            if module is target and name:
                names.append(name.split(".")[-1])
                break
    return sorted(set(names))


def rope_scaled_config(model_path: str, kind: str, cutoff_len: int, *, trust_remote_code: bool = False) -> Any:
    """The model's config with RoPE scaled by ceil(cutoff_len / max_position_embeddings) (None: no need)."""
    import math

    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    text = config.get_text_config()
    positions = int(getattr(text, "max_position_embeddings", 0) or 0)
    factor = math.ceil(cutoff_len / positions) if positions else 1
    if factor <= 1:
        console.print(f"rope_scaling: cutoff_len {cutoff_len} fits the model's {positions} positions; not scaled")
        return None
    params = dict(getattr(text, "rope_parameters", None) or {})
    if "full_attention" in params:  # per-layer-type parameters (Gemma 3): scale the global layers
        params["full_attention"] = {**params["full_attention"], "rope_type": kind, "factor": float(factor)}
        if kind == "yarn":
            params["full_attention"]["original_max_position_embeddings"] = positions
    else:
        params.update({"rope_type": kind, "factor": float(factor)})
        if kind == "yarn":
            params["original_max_position_embeddings"] = positions
    text.rope_parameters = params
    text.max_position_embeddings = positions * factor
    console.print(f"rope_scaling: {kind} x{factor} ({positions} -> {positions * factor} positions)")
    return config
