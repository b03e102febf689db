"""GRPO on the tiny model: the sampled mean reward rises on a task a rule reward scores; the rewards
themselves (built-in and user functions) and their errors, checked before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.config import load_config
from tunesmith.train.grpo import run_grpo
from tunesmith.train.rewards import resolve_rewards
from tunesmith.utils.errors import ConfigError


def _reply(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def test_builtin_rewards_score_as_documented() -> None:
    exact, contains, fmt, length, length_ref = resolve_rewards(
        ["exact_match", "contains", "format:^\\d+$", "length:4", "length"])
    answers = ["42", "42", "42"]
    done = [_reply(" 42 "), _reply("It is 42."), _reply("forty-two")]  # TRL's conversational answers
    assert exact(completions=done, answer=answers) == [1.0, 0.0, 0.0]
    assert contains(completions=done, answer=answers) == [1.0, 1.0, 0.0]
    assert fmt(completions=done) == [1.0, 0.0, 0.0]
    assert length(completions=["abcd", "abcdefgh"]) == [1.0, 0.5]
    assert length_ref(completions=["ab", "abcd"], answer=["ab", "ab"]) == [1.0, 0.5]
    assert [f.__name__ for f in (exact, fmt, length)] == ["exact_match", "format", "length_4"]


def test_user_reward_function_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "my_rewards.py").write_text(
        "def shouty(completions, answer=None, **kwargs):\n    return [float(c.isupper()) for c in completions]\n")
    config = tmp_path / "grpo.yaml"
    config.write_text("stage: grpo\n")
    (fn,) = resolve_rewards(["my_rewards:shouty"], str(config))
    assert fn(completions=[_reply("YES"), _reply("no")], answer=["x", "y"]) == [1.0, 0.0]
    assert fn.__name__ == "my_rewards.shouty"
    with pytest.raises(ConfigError, match="has no function 'quiet'.*shouty"):
        resolve_rewards(["my_rewards:quiet"], str(config))


@pytest.mark.parametrize(("spec", "message"), [
    ("exact_mach", "did you mean 'exact_match'"), ("format:([", "not a valid regular expression"),
    ("length:ten", "whole number"), ("no_such_module_xyz:f", "cannot import module"), ("format", "needs a pattern")])
def test_bad_reward_names_are_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_rewards([spec])


@pytest.fixture
def grpo_overrides(tiny_train_overrides: dict, dataset_dir: Path) -> dict:
    rows = [{"instruction": f"Add {a} and {b}.", "output": str(a + b)} for a in range(4) for b in range(4)]
    (dataset_dir / "add.json").write_text(json.dumps(rows))
    # Reward: the answer starts with a lowercase letter, which a random tiny model does about a third of
    # the time, so the groups of sampled answers differ and GRPO has something to push on.
    return {**tiny_train_overrides, "stage": "grpo", "dataset": "add.json", "eval_dataset": "", "test_dataset": "",
            "reward_funcs": ["format:^[a-z]"], "num_generations": 4, "max_completion_length": 8,
            "per_device_train_batch_size": 8, "finetuning_type": "full", "learning_rate": 5e-2,
            "lr_scheduler_type": "constant", "warmup_ratio": 0.0, "num_train_epochs": 2}


def test_grpo_mean_reward_rises(grpo_overrides: dict) -> None:
    result = run_grpo(load_config(None, grpo_overrides))
    m = result.metrics
    from tunesmith.train.callbacks import read_log

    sampled = [r["reward"] for r in read_log(result.output_dir) if "reward" in r]
    assert len(sampled) == m["steps"] == 16
    first, last = sum(sampled[:4]) / 4, sum(sampled[-4:]) / 4
    assert last > first + 0.2, sampled
    assert m["after"]["format"] >= m["before"]["format"]
    assert {"mean_reward", "format", "example_answer"} <= set(m["after"])


def test_grpo_checks_the_batch_against_num_generations(grpo_overrides: dict) -> None:
    with pytest.raises(ConfigError, match="multiple of num_generations=4"):
        run_grpo(load_config(None, {**grpo_overrides, "per_device_train_batch_size": 6}))
    assert not Path(grpo_overrides["output_dir"]).exists()
