"""Calibration goes through the real training path, measures, and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.advise.calibrate import _fit, calibrate
from tunesmith.advise.estimate import workload
from tunesmith.advise.profile import build_profile
from tunesmith.config import load_config


def test_fit_recovers_fixed_and_per_token_cost() -> None:
    # steps of 100, 200, 300, 400 tokens at 0.5 s + 0.01 s/token; the first step is slow (warm-up)
    marks = [(0.0, 0), (5.0, 100)]
    t, k = 5.0, 100
    for tokens in (200, 300, 400, 200):
        t += 0.5 + 0.01 * tokens
        k += tokens
        marks.append((t, k))
    a, b, first = _fit(marks)
    assert a == pytest.approx(0.5) and b == pytest.approx(0.01) and first == 5.0


def test_calibration_runs_real_steps_and_writes_nothing(tiny_train_overrides: dict) -> None:
    cfg = load_config(None, tiny_train_overrides)
    cal = calibrate(cfg, steps=4)
    assert cal.steps_timed == 3
    assert cal.seconds_per_token > 0 and cal.tokens_per_s > 0 and cal.eval_seconds_per_token > 0
    assert cal.peak_rss_mb > 100
    assert cal.rows == 16, "the sampler draws from the whole (toy) training set, as the real run does"
    assert not Path(tiny_train_overrides["output_dir"]).exists(), "the user's output_dir is not touched"
    w = workload(cfg.flat(), build_profile(cfg))
    assert cal.train_seconds(w) > 0


# How close the calibrated estimate comes to a real run is machine time, not a pass/fail property:
# benchmarks/estimate_accuracy.py measures it (calibrate, train the quickstart, calibrate again).
