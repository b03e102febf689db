"""The typed config tree and its loader (YAML + key=value overrides)."""

from tunesmith.config.load import dump_config, load_config, stage_configs
from tunesmith.config.schema import DEFAULT_MODEL, Config, field_help, field_index

__all__ = ["Config", "DEFAULT_MODEL", "dump_config", "field_help", "field_index", "load_config", "stage_configs"]
