"""GRPO reward functions named in the config: built-in rules and the user's own ``module:function``.

``reward_funcs`` lists names; each becomes a function that scores every sampled answer in [0, 1] (user
functions may return any float):

- ``exact_match``: 1 when the answer equals the reference ``answer`` after stripping surrounding white
  space, else 0: the evaluation's ``exact_match`` (``utils/text.py``), so a reward of 1 is an exact answer there
- ``contains``: 1 when the (stripped) reference answer appears in the sampled one
- ``format:REGEX``: 1 when the regular expression matches (``re.search``; anchor it with ^...$)
- ``length`` / ``length:N``: 1 up to N characters (default: the reference answer's length), then N/len
- ``package.module:function``: your function, called as ``function(completions=[str, ...],
  answer=[str, ...], prompts=[...], **kwargs)``; it returns one float per completion (None to skip)

Names are resolved before any model loads, so a typo costs a second, not a model load.
"""

from __future__ import annotations

import difflib
import importlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunesmith.utils.errors import ConfigError
from tunesmith.utils.text import exact_match as same_answer
from tunesmith.utils.text import normalize

RewardFn = Callable[..., list[float | None]]
BUILTINS = ("exact_match", "contains", "format", "length")


def completion_text(completion: Any) -> str:
    """The text of one sampled answer (TRL passes conversational answers as a list of turns)."""
    if isinstance(completion, list):
        return "".join(str(turn.get("content", "")) for turn in completion if isinstance(turn, dict))
    return str(completion)


def _named(fn: RewardFn, name: str) -> RewardFn:
    fn.__name__ = name  # TRL logs each reward as rewards/<name>/mean
    return fn


def _need_answers(answer: list[str] | None, name: str) -> list[str]:
    if answer is None:
        raise ConfigError([f"'reward_funcs': {name} compares with a reference answer, but the data has none "
                           "(GRPO reads it from the 'output' of instruction data)"])
    return answer


def exact_match(completions: list[Any], answer: list[str] | None = None, **_: Any) -> list[float | None]:
    refs = _need_answers(answer, "exact_match")
    return [same_answer(completion_text(c), r) for c, r in zip(completions, refs, strict=True)]


def contains(completions: list[Any], answer: list[str] | None = None, **_: Any) -> list[float | None]:
    refs = _need_answers(answer, "contains")
    return [float(normalize(r) in normalize(completion_text(c))) for c, r in zip(completions, refs, strict=True)]


def format_reward(pattern: str) -> RewardFn:
    regex = re.compile(pattern, re.DOTALL)

    def reward(completions: list[Any], **_: Any) -> list[float | None]:
        return [float(regex.search(completion_text(c).strip()) is not None) for c in completions]

    return _named(reward, "format")


def length_reward(limit: int | None) -> RewardFn:
    def reward(completions: list[Any], answer: list[str] | None = None, **_: Any) -> list[float | None]:
        out: list[float | None] = []
        for i, c in enumerate(completions):
            n = max(limit or (len(answer[i].strip()) if answer else 64), 1)
            length = len(completion_text(c).strip())
            out.append(1.0 if length <= n else n / length)
        return out

    return _named(reward, "length" if limit is None else f"length_{limit}")


def _user_function(spec: str, search_dirs: list[Path]) -> RewardFn:
    module_name, _, func_name = spec.partition(":")
    for d in search_dirs:  # a module beside the config file works without installing it
        if (d / f"{module_name.split('.')[0]}.py").exists() and str(d) not in sys.path:
            sys.path.insert(0, str(d))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError([f"'reward_funcs': cannot import module {module_name!r} for {spec!r} ({exc}); put "
                           f"{module_name}.py beside the config file or in the working directory"]) from exc
    fn = getattr(module, func_name, None)
    if not callable(fn):
        found = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
        raise ConfigError([f"'reward_funcs': {module_name!r} has no function {func_name!r} (functions: "
                           f"{', '.join(found) or 'none'})"])

    def reward(completions: list[Any], **kwargs: Any) -> list[float | None]:
        scores = fn(completions=[completion_text(c) for c in completions], **kwargs)
        if len(scores) != len(completions):
            raise ConfigError([f"'reward_funcs': {spec} returned {len(scores)} scores for {len(completions)} answers"])
        return [None if s is None else float(s) for s in scores]

    return _named(reward, spec.replace(":", "."))


def resolve_reward(spec: str, search_dirs: list[Path]) -> RewardFn:
    """One reward name from the config -> a TRL reward function."""
    name, sep, arg = spec.partition(":")
    if name == "exact_match" and not sep:
        return exact_match
    if name == "contains" and not sep:
        return contains
    if name == "format":
        if not arg:
            raise ConfigError(["'reward_funcs': format needs a pattern, e.g. 'format:^\\d+$'"])
        try:
            return format_reward(arg)
        except re.error as exc:
            raise ConfigError([f"'reward_funcs': {spec!r} is not a valid regular expression ({exc})"]) from exc
    if name == "length":
        if arg and not arg.isdigit():
            raise ConfigError([f"'reward_funcs': {spec!r}: the length limit must be a whole number of characters"])
        return length_reward(int(arg) if arg else None)
    if sep and arg and name not in BUILTINS:
        return _user_function(spec, search_dirs)
    close = difflib.get_close_matches(name, BUILTINS, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError([f"'reward_funcs': unknown reward {spec!r}{hint} (built-in: exact_match, contains, "
                       "format:REGEX, length[:N]; or your own 'module:function')"])


def resolve_rewards(specs: list[str], config_file: str | None = None) -> list[RewardFn]:
    """Every reward in the config, resolved up front (user modules are looked up beside the config)."""
    dirs = [Path.cwd()] + ([Path(config_file).resolve().parent] if config_file else [])
    if not specs:
        raise ConfigError(["'reward_funcs': stage grpo needs at least one reward (e.g. exact_match)"])
    return [resolve_reward(s, dirs) for s in specs]
