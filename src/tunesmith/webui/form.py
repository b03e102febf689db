"""The config form, without any UI library: one field per config key, built from the schema.

The web UI iterates :data:`FIELDS` to draw its form, and uses the functions here to go from form
values to a flat config, from a flat config to the YAML it runs, and from a YAML file back to form
values. Labels are the config keys themselves (what a user writes in YAML); help text comes from
``tunesmith.config.field_help`` in the chosen language.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from tunesmith.config.load import build_config, group_flat, read_yaml
from tunesmith.config.schema import GROUPS
from tunesmith.utils.errors import ConfigError

Kind = Literal["text", "optional_text", "int", "float", "bool", "tristate", "choice", "list"]
TRISTATE = ("auto", "true", "false")  # for bool | None keys: None means "decide automatically"

# Always written to the YAML, even at their defaults, so the file says what it trains on and where.
ESSENTIAL_KEYS = ("model_name_or_path", "template", "stage", "finetuning_type", "dataset", "dataset_dir",
                  "output_dir")


@dataclass(frozen=True)
class FieldSpec:
    """One config key as a form field."""

    key: str
    group: str
    kind: Kind
    default: Any
    choices: tuple[str, ...] = ()
    optional: bool = False  # None is a valid value


def _kind(annotation: Any) -> tuple[Kind, tuple[str, ...], bool]:
    args = typing.get_args(annotation)
    optional = type(None) in args
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        annotation = inner[0] if len(inner) == 1 else annotation
    if typing.get_origin(annotation) is Literal:
        return "choice", tuple(str(c) for c in typing.get_args(annotation)), optional
    if typing.get_origin(annotation) is list:
        return "list", (), optional
    if annotation is bool:
        return ("tristate" if optional else "bool"), (), optional
    if annotation is int:
        return "int", (), optional
    if annotation is float:
        return "float", (), optional
    return ("optional_text" if optional else "text"), (), optional


def _fields() -> tuple[FieldSpec, ...]:
    out = []
    for group, cls in GROUPS.items():
        for key, info in cls.model_fields.items():
            kind, choices, optional = _kind(info.annotation)
            out.append(FieldSpec(key, group, kind, info.get_default(call_default_factory=True), choices, optional))
    return tuple(out)


FIELDS: tuple[FieldSpec, ...] = _fields()
FIELD_BY_KEY: dict[str, FieldSpec] = {f.key: f for f in FIELDS}


def to_form(spec: FieldSpec, value: Any) -> Any:
    """A config value as the form shows it."""
    if spec.kind == "tristate":
        return "auto" if value is None else ("true" if value else "false")
    if spec.kind == "list":
        return ", ".join(str(v) for v in value or [])
    if spec.kind == "optional_text" or (spec.optional and spec.kind in ("int", "float")):
        return "" if value is None else str(value)  # drawn as a text box: empty means None
    return value


def from_form(spec: FieldSpec, value: Any) -> Any:
    """A form value as a config value (empty optional fields become None)."""
    if spec.kind == "tristate":
        return None if value in (None, "auto") else value == "true"
    if spec.kind == "list":
        items = value if isinstance(value, list) else str(value or "").split(",")
        return [str(v).strip() for v in items if str(v).strip()]
    if spec.kind in ("text", "optional_text", "choice"):
        text = "" if value is None else str(value).strip()
        return None if (spec.optional and not text) else text
    if spec.kind in ("int", "float"):
        return _number(spec, value)
    return bool(value)


def _number(spec: FieldSpec, value: Any) -> Any:
    """A number from a number box or a text box; text that is not a number is passed on for the
    config check to report (``'cutoff_len': Input should be a valid integer (got 'abc')``)."""
    if isinstance(value, str):
        value = value.strip()
    if value is None or value == "":
        return None if spec.optional else spec.default
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if spec.kind == "int" and number.is_integer() else number


def defaults() -> dict[str, Any]:
    """Every key at its schema default."""
    return {f.key: f.default for f in FIELDS}


def form_values(flat: dict[str, Any]) -> list[Any]:
    """Form values in FIELDS order for a flat config (missing keys take their defaults)."""
    return [to_form(f, flat.get(f.key, f.default)) for f in FIELDS]


def flat_from_form(values: list[Any] | tuple[Any, ...]) -> dict[str, Any]:
    """The flat config the form describes (values in FIELDS order)."""
    return {f.key: from_form(f, v) for f, v in zip(FIELDS, values, strict=True)}


def config_problems(flat: dict[str, Any]) -> list[str]:
    """Everything wrong with a flat config, as the CLI would report it ([] when it is valid)."""
    try:
        build_config(dict(flat))
    except ConfigError as exc:
        return exc.problems
    return []


class _Dumper(yaml.SafeDumper):
    """One key per line, lists inline (``dataset: [a, b]``) as people write them."""


_Dumper.add_representer(list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def to_yaml(flat: dict[str, Any], *, stages: list[dict[str, Any]] | None = None, header: str = "") -> str:
    """The YAML a run uses: essential keys plus every key that differs from its default, by group."""
    blocks = [header.rstrip("\n")] if header else []
    for group in GROUPS:
        rows = {f.key: flat[f.key] for f in FIELDS if f.group == group and f.key in flat
                and (f.key in ESSENTIAL_KEYS or flat[f.key] != f.default)}
        if rows:
            body = yaml.dump(rows, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000)
            blocks.append(f"# {group}\n{body.rstrip()}")
    if stages:
        blocks.append(yaml.safe_dump({"stages": stages}, allow_unicode=True, sort_keys=False).rstrip())
    return "\n\n".join(blocks) + "\n"


def read_config_file(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """A YAML config as (flat values, stages, problems), leniently: valid keys fill the form, each
    unknown key or invalid value becomes a problem (with "did you mean") and keeps its default.

    A relative dataset_dir is resolved against the YAML file, as ``tunesmith train`` does. A file
    that is not YAML at all raises ConfigError.
    """
    raw = read_yaml(path)
    stages = raw.pop("stages", None) or []
    if "dataset_dir" in raw and not Path(str(raw["dataset_dir"])).is_absolute():
        candidate = Path(path).parent / str(raw["dataset_dir"])
        if candidate.exists() or not Path(str(raw["dataset_dir"])).exists():
            raw["dataset_dir"] = str(candidate.resolve())
    problems: list[str] = []
    flat = defaults()
    for group, values in group_flat(raw, problems).items():
        for key, value in values.items():
            try:
                flat[key] = getattr(GROUPS[group].model_validate({key: value}), key)
            except ValidationError as exc:
                problems.append(f"'{key}': {exc.errors()[0]['msg']} (got {value!r})")
    return flat, stages if isinstance(stages, list) else [], problems
