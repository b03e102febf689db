"""One exact match: the evaluation metric and the GRPO reward agree on every pair, including case,
surrounding and inner white space."""

from __future__ import annotations

import pytest

from tunesmith.eval.metrics import score_pair
from tunesmith.train.rewards import resolve_rewards

PAIRS = [("数学", "数学\n"), (" Math ", "Math"), ("math", "Math"), ("two  words", "two words"), ("42.", "42"),
         ("", ""), ("\tanswer\n", "answer")]


@pytest.mark.parametrize(("prediction", "reference"), PAIRS)
def test_metric_and_reward_agree(prediction: str, reference: str) -> None:
    (reward,) = resolve_rewards(["exact_match"])
    metric = score_pair(prediction, reference)["exact_match"] / 100
    assert reward(completions=[prediction], answer=[reference]) == [metric]
    assert metric == float(prediction.strip() == reference.strip())
