"""Options and helpers shared by command groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunesmith.config.load import load_config, parse_overrides
from tunesmith.config.schema import Config

ConfigArg = Annotated[
    Path | None,
    typer.Argument(help="A YAML config (LLaMA-Factory key names). Optional when everything is given as key=value.",
                   show_default=False),
]
OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(help="key=value overrides, e.g. learning_rate=2e-4 num_train_epochs=5", show_default=False),
]


def split_config_and_overrides(config: Path | None, overrides: list[str] | None) -> tuple[Path | None, list[str]]:
    """Typer sees 'key=value' in the config position when no YAML is given: move it to overrides."""
    items = list(overrides or [])
    if config is not None and "=" in str(config) and not config.exists():
        items.insert(0, str(config))
        config = None
    return config, items


def build(config: Path | None, overrides: list[str] | None, extra: dict | None = None, *,
          require_data: bool = True) -> Config:
    """Load the config from a YAML and overrides (extra: values set by command flags)."""
    config, items = split_config_and_overrides(config, overrides)
    values = parse_overrides(items)
    values.update({k: v for k, v in (extra or {}).items() if v is not None})
    return load_config(config, values, require_data=require_data)
