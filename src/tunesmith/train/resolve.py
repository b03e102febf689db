"""How a config names a model, an adapter and a template.

Training and every later layer (eval, export, chat, serve) resolve these the same way, so the template
used in training is the one used to chat. A run folder remembers its base model and template in
``tunesmith_run.yaml``; pointing ``adapter_name_or_path`` (or ``--adapter``) at it is enough.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tunesmith.config.schema import DEFAULT_MODEL, Config
from tunesmith.data.templates import Template, get_template
from tunesmith.model.adapters import is_adapter_dir
from tunesmith.model.load import end_token_ids, load_model, load_tokenizer, resolve_model_path
from tunesmith.utils.errors import ModelLoadError

RUN_CONFIG = "tunesmith_run.yaml"


def run_settings(run_dir: str | Path) -> dict[str, Any]:
    """The resolved config saved beside a run ({} when the folder is not a tunesmith run)."""
    path = Path(run_dir) / RUN_CONFIG
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _model_type(model_path: str) -> str | None:
    cfg = Path(model_path) / "config.json"
    if cfg.exists():
        return json.loads(cfg.read_text()).get("model_type")
    return None


def resolve_template(cfg: Config, model_path: str, tokenizer: Any) -> Template:
    name = cfg.model.template
    if name == "auto" and cfg.model.adapter_name_or_path:
        name = run_settings(cfg.model.adapter_name_or_path).get("template", "auto")
    return get_template(name, _model_type(model_path), tokenizer)


def resolve_base(cfg: Config) -> tuple[str, str | None]:
    """(loadable base model path, adapter to continue from or None) for training."""
    base = cfg.model.model_name_or_path
    adapter = None
    src = cfg.train.continue_from or cfg.model.adapter_name_or_path
    if src:
        if not Path(src).is_dir():
            raise ModelLoadError(f"{src!r} is not a folder", hint="point at a finished run's output_dir")
        if is_adapter_dir(src):
            adapter = src
            saved = run_settings(src).get("model_name_or_path")
            if saved and base == DEFAULT_MODEL:
                base = saved
        elif (Path(src) / "config.json").exists():
            base = src  # a full fine-tune: continue from its weights
        else:
            raise ModelLoadError(f"{src!r} holds neither an adapter nor model weights",
                                 hint="point at a finished run's output_dir")
    return resolve_model_path(base, cfg.model.cache_dir), adapter


@dataclass
class Loaded:
    """A model ready for generation, with the tokenizer, template and stop ids that go with it."""

    model: Any
    tokenizer: Any
    template: Template
    stop_ids: list[int]
    base_path: str
    adapter_path: str | None = None


def load_inference_model(cfg: Config, *, dtype: Any = None, merge: bool = False) -> Loaded:
    """Base model (+ adapter) for generation, bf16 where the machine supports it."""
    import torch

    from tunesmith.model.adapters import load_adapter, merge_adapter
    from tunesmith.utils.hardware import bf16_available

    adapter = cfg.model.adapter_name_or_path
    base = cfg.model.model_name_or_path
    if adapter:
        if not Path(adapter).is_dir():
            raise ModelLoadError(f"adapter_name_or_path: {adapter!r} is not a folder")
        saved = run_settings(adapter)
        if not is_adapter_dir(adapter) and (Path(adapter) / "config.json").exists():
            base, adapter = adapter, None  # a full fine-tune's output_dir is a model folder
        elif saved.get("model_name_or_path") and base == DEFAULT_MODEL:
            base = saved["model_name_or_path"]
    path = resolve_model_path(base, cfg.model.cache_dir)
    if dtype is None:
        want_bf16 = cfg.train.bf16 if cfg.train.bf16 is not None else bf16_available()
        dtype = torch.bfloat16 if want_bf16 else torch.float32
    tokenizer = load_tokenizer(path, trust_remote_code=cfg.model.trust_remote_code)
    model = load_model(path, dtype=dtype, trust_remote_code=cfg.model.trust_remote_code)
    if adapter:
        model = load_adapter(model, adapter)
        if merge:
            model = merge_adapter(model)
    model.eval()
    template = resolve_template(cfg, path, tokenizer)
    return Loaded(model, tokenizer, template, end_token_ids(tokenizer, template.stop_words), path, adapter)
