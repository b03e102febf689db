"""How a config names a model, an adapter and a template.

Training and every later layer (eval, export, chat, serve) resolve these the same way, so the template
used in training is the one used to chat. A run folder remembers its base model and template in
``tunesmith_run.yaml``; pointing ``adapter_name_or_path`` (or ``--adapter``) at it is enough.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tunesmith.config.schema import DEFAULT_MODEL, Config
from tunesmith.data.templates import Template, get_template
from tunesmith.model.adapters import adapter_base_model, is_adapter_dir
from tunesmith.model.load import resolve_model_path
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
    import dataclasses

    name = cfg.model.template
    thinking = cfg.data.enable_thinking
    if cfg.model.adapter_name_or_path:
        saved = run_settings(cfg.model.adapter_name_or_path)
        name = saved.get("template", "auto") if name == "auto" else name
        thinking = thinking and saved.get("enable_thinking", True)  # a run trained without thinking chats without
    template = get_template(name, _model_type(model_path), tokenizer)
    return dataclasses.replace(template, enable_thinking=False) if not thinking else template


def source_model(src: str, base: str, *, key: str) -> tuple[str, str | None]:
    """(base model name, adapter folder or None) for a run folder ``src`` named by config key ``key``.

    An adapter's base is the one its run recorded in ``tunesmith_run.yaml`` unless ``base`` names one;
    the record is written last, so an adapter folder without it is a run that did not finish saving
    (or not a tunesmith run) and is refused rather than paired with the default base model.
    A full fine-tune's folder is a model of its own.
    """
    path = Path(src)
    if not path.is_dir():
        raise ModelLoadError(f"{key}: {src!r} is not a folder", hint="point at a finished run's output_dir")
    if is_adapter_dir(path):
        if base != DEFAULT_MODEL:
            return base, src
        saved = run_settings(path).get("model_name_or_path")
        if saved:
            return saved, src
        named = adapter_base_model(path)
        raise ModelLoadError(
            f"{key}: {src!r} holds an adapter but no {RUN_CONFIG}, the record tunesmith writes last when a "
            "run finishes: the run stopped before it finished saving, or the adapter was not made by tunesmith",
            hint="resume the run (resume_from_checkpoint=last) so it finishes, or name the base model it was "
            "trained on: model_name_or_path=" + (repr(named) if named else "<base model>")
            + " (model_name_or_path=default for the bundled model)",
        )
    if (path / "config.json").exists():
        return src, None  # a full fine-tune: its output_dir is a model folder
    raise ModelLoadError(f"{key}: {src!r} holds neither an adapter nor model weights",
                         hint="point at a finished run's output_dir")


def resolve_base(cfg: Config) -> tuple[str, str | None]:
    """(loadable base model path, adapter to continue from or None) for training."""
    base, adapter = cfg.model.model_name_or_path, None
    src = cfg.train.continue_from or cfg.model.adapter_name_or_path
    if src:
        key = "continue_from" if cfg.train.continue_from else "adapter_name_or_path"
        base, adapter = source_model(src, base, key=key)
    return resolve_model_path(base, cfg.model.cache_dir), adapter


def inference_source(cfg: Config) -> tuple[str, str | None]:
    """(base model name, adapter or None) that chat, eval, export and serve load for ``cfg``."""
    if cfg.model.adapter_name_or_path:
        return source_model(cfg.model.adapter_name_or_path, cfg.model.model_name_or_path,
                            key="adapter_name_or_path")
    return cfg.model.model_name_or_path, None
