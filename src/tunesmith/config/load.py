"""Build a Config from defaults < YAML file < ``key=value`` overrides, reporting every error at once.

Nothing here imports torch or transformers: a typo in a config is reported in well under a second.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tunesmith.config.peft_rules import peft_problems
from tunesmith.config.schema import GROUPS, Config, field_help, field_index
from tunesmith.utils.console import note_once
from tunesmith.utils.errors import ConfigError

# Keys that LLaMA-Factory users write and that mean nothing (or the same thing) here.
IGNORED_KEYS = {
    "do_train": "training is what 'tunesmith train' does",
    "do_eval": "use 'tunesmith eval'",
    "do_predict": "use 'tunesmith eval'",
    "overwrite_cache": "tunesmith's cache is keyed by content",
    "preprocessing_num_workers": "preprocessing runs in-process",
    "flash_attn": "picked automatically",
    "predict_with_generate": "'tunesmith eval' always generates",
    "eval_strategy": "set eval_steps",
    "evaluation_strategy": "set eval_steps",
    "logging_dir": "logs go to output_dir",
}
TOP_LEVEL_KEYS = {"stages"}
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_value(text: str) -> Any:
    """Parse a command-line value the way YAML would (numbers, booleans, lists, null)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads "1e-4" as a string
    return value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn ``["learning_rate=1e-4", "lora_target=q_proj,v_proj"]`` into a dict."""
    out: dict[str, Any] = {}
    problems = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            problems.append(f"override {item!r} is not of the form key=value (e.g. learning_rate=1e-4)")
            continue
        out[key] = parse_value(value)
    if problems:
        raise ConfigError(problems, source="command line")
    return out


class _RepeatedKey(yaml.constructor.ConstructorError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            if isinstance(key, str) and key in seen:
                raise _RepeatedKey(
                    None, None, f"the key '{key}' is given twice (lines {seen[key]} and {line}); only the last "
                    "would be used: delete the one you do not mean", key_node.start_mark)
            if isinstance(key, str):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file (UTF-8, a BOM allowed), with the line of any syntax error or repeated key."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError([f"config file {str(p)!r} does not exist"], source=str(p))
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"line {line}: the file is not UTF-8 text (byte 0x{raw[exc.start]:02x}); save it as "
                           "UTF-8 (e.g. `iconv -f GBK -t UTF-8 old.yaml > new.yaml`)"], source=str(p)) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader) or {}  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        kind = "repeated key" if isinstance(exc, _RepeatedKey) else "YAML syntax error"
        raise ConfigError([f"{kind}{where}: {getattr(exc, 'problem', exc)}"], source=str(p)) from exc
    if not isinstance(data, dict):
        raise ConfigError(["the top level must be a mapping of key: value"], source=str(p))
    return data


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _normalize_lists(key: str, value: Any) -> Any:
    if key == "lora_target" and isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    if key == "reward_funcs" and isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    return value


def group_flat(flat: dict[str, Any], problems: list[str], where: str = "") -> dict[str, dict[str, Any]]:
    """Route flat keys to their groups; unknown keys become problems with a suggestion."""
    index = field_index()
    valid = sorted(index) + sorted(TOP_LEVEL_KEYS)
    grouped: dict[str, dict[str, Any]] = {g: {} for g in GROUPS}
    for key, value in flat.items():
        if key in GROUPS and isinstance(value, dict):  # nested form: `train: {learning_rate: ...}`
            for k, v in value.items():
                if index.get(k) == key:
                    grouped[key][k] = _normalize_lists(k, v)
                else:
                    problems.append(f"{where}'{key}.{k}': unknown key in group '{key}'{_suggest(k, valid)}")
            continue
        if key in IGNORED_KEYS:
            note_once(f"ignored-key:{key}", f"'{key}' is ignored: {IGNORED_KEYS[key]}")
            continue
        group = index.get(key)
        if group is None:
            problems.append(f"{where}'{key}': unknown key{_suggest(key, valid)}")
            continue
        grouped[group][key] = _normalize_lists(key, value)
    return grouped


def _validation_problems(exc: ValidationError, where: str = "") -> list[str]:
    out = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"] if not isinstance(x, int)]
        key = loc[-1] if loc else "?"
        value = err.get("input")
        about = f" [{field_help(key)}]" if key in field_index() else ""  # what the key means: the way to fix it
        out.append(f"{where}'{key}': {err['msg']} (got {value!r:.80}){about}")
    return out


def check_semantics(cfg: Config, *, require_data: bool = True) -> list[str]:
    """Cross-field rules that a single field cannot express.

    ``require_data=False`` is for commands that use a model but read no training data (chat, export,
    serve, benchmark scoring).
    """
    problems: list[str] = []
    f, t, d = cfg.finetune, cfg.train, cfg.data
    if require_data and f.stage != "pt" and not d.dataset and not cfg.stages:
        problems.append("'dataset': no dataset given; set dataset: NAME (from dataset_info.json) or a file path")
    if f.finetuning_type != "lora" and (f.use_dora or f.use_rslora):
        problems.append("'use_dora'/'use_rslora' only apply to finetuning_type: lora")
    if f.use_dora and f.use_rslora:
        pass  # peft supports both at once
    if t.resume_from_checkpoint and t.continue_from:
        problems.append(
            "'resume_from_checkpoint' and 'continue_from' both set: resume continues an interrupted run, "
            "continue_from starts a new run from a finished one; keep one"
        )
    if d.val_size >= 1 and d.val_size != int(d.val_size):
        problems.append(f"'val_size': {d.val_size} must be a share below 1 or a whole count")
    if f.stage == "grpo" and not f.reward_funcs:
        problems.append("'reward_funcs': stage grpo needs at least one reward (e.g. exact_match)")
    per_round = t.per_device_train_batch_size * t.gradient_accumulation_steps
    if f.stage == "grpo" and per_round % f.num_generations:
        problems.append(
            f"'per_device_train_batch_size' x 'gradient_accumulation_steps' = {per_round} answers per round must be "
            f"a multiple of num_generations={f.num_generations} (GRPO compares the answers to one prompt with each "
            "other); e.g. set per_device_train_batch_size to a multiple of num_generations")
    if f.stage == "kto" and t.per_device_train_batch_size < 2:
        problems.append("'per_device_train_batch_size': KTO needs at least 2 examples per batch (it estimates its "
                        "KL term from the other answers in the batch); set it to 2 or more")
    problems += peft_problems(cfg)
    return problems


def build_config(flat: dict[str, Any], *, source: str | None = None, require_data: bool = True) -> Config:
    """Validate a flat dict into a Config, raising one ConfigError with every problem."""
    problems: list[str] = []
    stages = flat.pop("stages", None) or []
    grouped = group_flat(flat, problems)
    kwargs: dict[str, Any] = {}
    for group, values in grouped.items():
        try:
            kwargs[group] = GROUPS[group](**values)
        except ValidationError as exc:
            problems += _validation_problems(exc)
    if not isinstance(stages, list):
        problems.append("'stages' must be a list of mappings of keys to override per stage")
        stages = []
    for i, stage in enumerate(stages):
        if not isinstance(stage, dict):
            problems.append(f"stages[{i}] must be a mapping of key: value")
            continue
        merged = {**{k: v for g in grouped.values() for k, v in g.items()}, **stage}
        sub_grouped = group_flat(dict(stage), problems, where=f"stages[{i}].")
        for group, values in sub_grouped.items():
            try:
                GROUPS[group](**{**grouped[group], **values})
            except ValidationError as exc:
                problems += _validation_problems(exc, where=f"stages[{i}].")
        del merged
    if problems:
        raise ConfigError(problems, source=source)
    cfg = Config(**kwargs, stages=stages, source=source)
    problems = check_semantics(cfg, require_data=require_data)
    if problems:
        raise ConfigError(problems, source=source)
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None, *,
                require_data: bool = True) -> Config:
    """Defaults < YAML at ``path`` < ``overrides``. Relative dataset_dir is resolved against the YAML."""
    flat: dict[str, Any] = {}
    source = None
    if path is not None:
        flat.update(read_yaml(path))
        source = str(path)
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    flat.update(overrides or {})
    if path is not None and "dataset_dir" in flat and not Path(str(flat["dataset_dir"])).is_absolute():
        candidate = Path(path).parent / str(flat["dataset_dir"])
        if candidate.is_dir():  # relative to the YAML file; otherwise relative to the working directory
            flat["dataset_dir"] = str(candidate)
    return build_config(flat, source=source, require_data=require_data)


def stage_configs(cfg: Config) -> list[Config]:
    """Expand a multi-stage config into one Config per stage (a single-stage config gives [cfg])."""
    if not cfg.stages:
        return [cfg]
    base = cfg.flat()
    base.pop("stages", None)
    return [build_config({**base, **stage}, source=cfg.source) for stage in cfg.stages]


def dump_config(cfg: Config) -> str:
    """The resolved config as flat YAML (what we save beside every run)."""
    return yaml.safe_dump(cfg.flat(), allow_unicode=True, sort_keys=False)
