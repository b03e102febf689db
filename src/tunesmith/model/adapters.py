"""Which parameters train: LoRA (plain, rsLoRA, DoRA), full, or freeze tuning; adapter load and merge.

Built on peft; this module only maps tunesmith's config keys to peft's and explains bad choices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.config.peft_rules import lora_init
from tunesmith.config.schema import FinetuneArgs
from tunesmith.utils.console import note_once
from tunesmith.utils.errors import ConfigError, ModelLoadError


def linear_module_names(model: Any) -> list[str]:
    """Short names of the linear layers LoRA can target (excluding the output head)."""
    import torch

    names = set()
    for full_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and "lm_head" not in full_name and "score" not in full_name:
            names.add(full_name.split(".")[-1])
    return sorted(names)


def lora_target_problem(available: list[str], lora_target: list[str]) -> str | None:
    """Why ``lora_target`` names layers the model lacks (None when every name is one of ``available``)."""
    missing = [t for t in lora_target if t != "all" and t not in available]
    if not missing:
        return None
    return (f"'lora_target': {missing} not found in this model; its linear layers are {', '.join(available)} "
            "(or use 'all')")


def linear_module_names_of(model_path: str, *, trust_remote_code: bool = False) -> list[str]:
    """``linear_module_names`` of the model in ``model_path`` without loading its weights (built on the meta
    device from config.json: well under a second), for checking lora_target before any stage runs."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    from tunesmith.model.vision import is_vision_config

    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    auto = AutoModelForImageTextToText if is_vision_config(config) else AutoModelForCausalLM
    with torch.device("meta"):
        model = auto.from_config(config, trust_remote_code=trust_remote_code)
    return linear_module_names(model)


def lora_config(model: Any, ft: FinetuneArgs, *, task_type: str = "CAUSAL_LM") -> Any:
    """A peft LoraConfig from tunesmith's keys, validating lora_target against the model."""
    from peft import LoraConfig

    from tunesmith.model.peft_extras import embedding_modules, init_lora_kwargs

    problem = lora_target_problem(linear_module_names(model), ft.lora_target)
    if problem:
        raise ConfigError([problem])
    targets: Any = "all-linear" if ft.lora_target == ["all"] else ft.lora_target
    to_save = list(ft.additional_target)
    if ft.new_special_tokens:  # new tokens need trainable embedding rows, or they stay at their initial values
        for name in embedding_modules(model):
            if name not in to_save:
                to_save.append(name)
                note_once(f"new-tokens:{name}", f"new_special_tokens: {name} trains in full (additional_target)")
    return LoraConfig(
        r=ft.lora_rank,
        lora_alpha=ft.lora_alpha or 2 * ft.lora_rank,
        lora_dropout=ft.lora_dropout,
        target_modules=targets,
        use_rslora=ft.use_rslora,
        use_dora=ft.use_dora,
        task_type=task_type,
        modules_to_save=to_save or None,
        **init_lora_kwargs(lora_init(ft), ft.pissa_iter),
    )


# PiSSA and OLoRA move part of every targeted weight into the adapter, so the trained adapter belongs to
# the changed base; at the end of a run peft converts it into an ordinary LoRA of twice the rank that
# applies to the original base, using the adapter as it was right after initialization (saved here).
REWRITING_INITS = ("pissa", "olora")
INIT_ADAPTER_DIR = "lora_init"


def save_initial_adapter(model: Any, ft: FinetuneArgs, out: Path) -> Path | None:
    """For PiSSA / OLoRA: save the adapter as initialized (needed to convert the trained one); else None."""
    if lora_init(ft) not in REWRITING_INITS:
        return None
    config = model.peft_config["default"]
    init, config.init_lora_weights = config.init_lora_weights, True  # reloads as a plain adapter
    model.save_pretrained(out / INIT_ADAPTER_DIR)
    config.init_lora_weights = init
    return out / INIT_ADAPTER_DIR


def convert_rewriting_adapter(model: Any, out: Path) -> bool:
    """Re-save a PiSSA / OLoRA adapter in ``out`` as a LoRA for the original base; True if it did."""
    import shutil

    init_dir = out / INIT_ADAPTER_DIR
    if not init_dir.is_dir() or not hasattr(model, "peft_config"):
        return False
    model.save_pretrained(out, path_initial_model_for_weight_conversion=str(init_dir))
    shutil.rmtree(init_dir, ignore_errors=True)
    return True


def _freeze(model: Any, ft: FinetuneArgs) -> None:
    """Train only the last ``freeze_trainable_layers`` decoder layers (and the final norm)."""
    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    if ft.freeze_trainable_layers > n_layers:
        raise ConfigError([f"'freeze_trainable_layers': {ft.freeze_trainable_layers} but the model has "
                           f"{n_layers} layers"])
    keep = {str(i) for i in range(n_layers - ft.freeze_trainable_layers, n_layers)}
    for name, param in model.named_parameters():
        parts = name.split(".")
        in_kept_layer = any(p == "layers" and i + 1 < len(parts) and parts[i + 1] in keep
                            for i, p in enumerate(parts))
        param.requires_grad = in_kept_layer or name.endswith("model.norm.weight")


def note_fixed_lora_keys(model: Any, ft: FinetuneArgs, adapter_path: str) -> list[str]:
    """Say which lora_* keys the config sets differently from the adapter being continued: the adapter's own
    values train (its shape and placement were fixed when it was made). Returns the keys."""
    import json

    saved = json.loads((Path(adapter_path) / "adapter_config.json").read_text())
    targets = saved.get("target_modules") or []
    every = set(linear_module_names(model))
    theirs_target = every if targets == "all-linear" else {t.split(".")[-1] for t in targets}  # may be full names
    ours_target = every if ft.lora_target == ["all"] else set(ft.lora_target)
    pairs = {
        "lora_rank": (ft.lora_rank, saved.get("r")),
        "lora_alpha": (ft.lora_alpha or 2 * ft.lora_rank, saved.get("lora_alpha")),
        "lora_dropout": (ft.lora_dropout, saved.get("lora_dropout", 0.0)),
        "lora_target": (sorted(ours_target), sorted(theirs_target)),
        "use_rslora": (ft.use_rslora, bool(saved.get("use_rslora"))),
        "use_dora": (ft.use_dora, bool(saved.get("use_dora"))),
    }
    differ = [k for k, (ours, theirs) in pairs.items() if k in ft.model_fields_set and ours != theirs]
    if differ:
        said = ", ".join(f"{k}={pairs[k][0]}" for k in differ)
        kept = ", ".join(f"{k}={pairs[k][1]}" for k in differ)
        note_once(f"lora-keys:{adapter_path}",
                  f"continuing the adapter in {adapter_path}: {said} ignored; the adapter's own {kept} train "
                  "(an adapter's shape is fixed when it is made; to change it, train a new adapter without "
                  "adapter_name_or_path / continue_from)")
    return differ


def apply_finetuning(model: Any, ft: FinetuneArgs, *, adapter_path: str | None = None) -> Any:
    """Prepare ``model`` for training according to finetuning_type; returns the model to train."""
    if ft.finetuning_type == "lora":
        from peft import PeftModel, get_peft_model

        if adapter_path:  # continue training an existing adapter
            note_fixed_lora_keys(model, ft, adapter_path)
            return PeftModel.from_pretrained(model, adapter_path, is_trainable=True)
        peft_model = get_peft_model(model, lora_config(model, ft))
        if lora_init(ft) == "loftq":
            from tunesmith.model.peft_extras import apply_loftq

            apply_loftq(peft_model)
        return peft_model
    if adapter_path:
        raise ConfigError(["'adapter_name_or_path' is only used with finetuning_type: lora; for full or "
                           "freeze tuning point model_name_or_path at the earlier run's output_dir"])
    if ft.finetuning_type == "freeze":
        _freeze(model, ft)
    else:
        for p in model.parameters():
            p.requires_grad = True
    return model


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").exists()


def adapter_base_model(path: str | Path) -> str | None:
    """The base model an adapter was trained on (from adapter_config.json)."""
    import json

    cfg = Path(path) / "adapter_config.json"
    if not cfg.exists():
        return None
    return json.loads(cfg.read_text()).get("base_model_name_or_path")


def load_adapter(model: Any, path: str, *, name: str = "default") -> Any:
    """Attach a trained adapter for inference (resizing the embeddings first when the run added tokens)."""
    from peft import PeftModel

    if not is_adapter_dir(path):
        raise ModelLoadError(f"adapter_name_or_path: {path!r} has no adapter_config.json",
                             hint="point at a run's output_dir (or one of its checkpoint-N folders)")
    _match_vocabulary(model, path)
    return PeftModel.from_pretrained(model, path, adapter_name=name)


def adapter_vocab_size(path: str | Path) -> int | None:
    """Token count of the tokenizer saved with a run (None without one)."""
    import json

    tok_file = Path(path) / "tokenizer.json"
    if not tok_file.exists():
        return None
    data = json.loads(tok_file.read_text(encoding="utf-8"))
    ids = [t["id"] for t in data.get("added_tokens", [])] + list(data.get("model", {}).get("vocab", {}).values())
    return max(ids, default=-1) + 1


def _match_vocabulary(model: Any, path: str) -> None:
    """A run with new_special_tokens saved a larger tokenizer and embeddings: resize the base to match."""
    size = adapter_vocab_size(path)
    if size and size > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(size, mean_resizing=False)


def merge_adapter(model: Any) -> Any:
    """Fold LoRA weights into the base weights; returns a plain transformers model."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
