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


@pytest.mark.real_model
def test_calibrated_time_agrees_with_a_real_run_within_25_percent(tmp_path: Path) -> None:
    """The estimate's promise on this machine: calibrate, train for real, calibrate again (the average of
    the two calibrations cancels a steady change in what else the machine runs), compare train_runtime."""
    import os

    from tunesmith.train.sft import run_sft

    root = Path(__file__).resolve().parents[3]
    cfg = load_config(root / "examples" / "quickstart.yaml", {
        "output_dir": str(tmp_path / "run"), "max_steps": 24, "eval_steps": 12, "report_summary": False,
        "plot_loss": False, "save_steps": 1000,
    })
    w = workload(cfg.flat(), build_profile(cfg))
    before = calibrate(cfg, steps=8).train_seconds(w)
    actual = run_sft(cfg).metrics["train_runtime_s"]
    after = calibrate(cfg, steps=8).train_seconds(w)
    predicted = (before + after) / 2
    load = os.getloadavg()
    print(f"predicted {predicted:.1f}s (before {before:.1f}, after {after:.1f}), actual {actual:.1f}s, load {load}")
    assert abs(predicted - actual) / actual <= 0.25, (predicted, before, after, actual, load)
