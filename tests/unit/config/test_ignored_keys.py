"""Keys tunesmith does not use are reported once with the reason; per-stage batch rules fail with the
config, before any stage of a multi-stage config trains."""

from __future__ import annotations

import pytest

from tunesmith.config import load_config
from tunesmith.config.load import IGNORED_KEYS, stage_configs
from tunesmith.utils import console as console_mod
from tunesmith.utils.errors import ConfigError


@pytest.fixture(autouse=True)
def fresh_notes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_mod, "_told", set())


def test_ignored_keys_are_said_once_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(2):  # a config is built again per stage and per command: the note prints once
        load_config(None, {"dataset": "d", "eval_strategy": "steps", "do_train": True})
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert out.count("'eval_strategy' is ignored: " + IGNORED_KEYS["eval_strategy"]) == 1, out
    assert out.count("'do_train' is ignored") == 1


def test_stage_batch_rules_fail_before_any_stage_runs() -> None:
    cfg = {"dataset": "d", "per_device_train_batch_size": 1,
           "stages": [{"stage": "sft"}, {"stage": "kto"}, {"stage": "grpo", "reward_funcs": "exact_match",
                                                           "per_device_train_batch_size": 3}]}
    with pytest.raises(ConfigError) as info:
        stage_configs(load_config(None, cfg))
    assert "KTO needs at least 2" in str(info.value)
    with pytest.raises(ConfigError, match="multiple of num_generations=4"):
        load_config(None, {"dataset": "d", "stage": "grpo", "reward_funcs": "exact_match",
                           "per_device_train_batch_size": 3})
