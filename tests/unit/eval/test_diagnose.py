"""diagnose on synthetic training logs: one curve per case of the notes, plus bad input."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from tunesmith.eval.diagnose import LOG_FILE, diagnose_rows, diagnose_run, print_diagnosis
from tunesmith.utils.errors import DataFormatError

MAX = 300


def write_log(run: Path, loss: Callable[[int], float], eval_loss: Callable[[int], float] | None = None,
              *, every: int = 10, eval_every: int = 50, epochs: float = 3.0) -> Path:
    """A train_log.jsonl as JsonlLogger writes it: a loss row every `every` steps, eval rows, a final row."""
    run.mkdir(parents=True, exist_ok=True)
    rows = []
    for step in range(every, MAX + 1, every):
        epoch = epochs * step / MAX
        value = loss(step)
        rows.append({"step": step, "max_steps": MAX, "epoch": epoch, "loss": value, "learning_rate": 1e-4,
                     **({"perplexity": math.exp(value)} if value < 50 else {})})
        if eval_loss and step % eval_every == 0:
            e = eval_loss(step)
            rows.append({"step": step, "max_steps": MAX, "epoch": epoch, "eval_loss": e,
                         "eval_perplexity": math.exp(e)})
    rows.append({"step": MAX, "max_steps": MAX, "epoch": epochs, "train_loss": 1.0, "train_runtime": 10.0})
    (run / LOG_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def decay(start: float, floor: float, rate: float) -> Callable[[int], float]:
    return lambda s: floor + (start - floor) * math.exp(-rate * s)


def test_log_file_name_matches_the_trainer_callback() -> None:
    from tunesmith.train.callbacks import LOG_FILE as WRITTEN

    assert LOG_FILE == WRITTEN


def test_healthy_curve(tmp_path: Path) -> None:
    run = write_log(tmp_path / "r", decay(2.0, 0.6, 0.03), decay(2.1, 0.7, 0.03))
    d = diagnose_run(run)
    assert [f.case for f in d.findings] == ["healthy"]
    assert d.max_steps == MAX and d.final_eval_loss == pytest.approx(0.7, abs=0.01)


def test_still_falling_at_the_end(tmp_path: Path) -> None:
    run = write_log(tmp_path / "r", lambda s: 2.0 - 1.5 * s / MAX, lambda s: 2.1 - 1.4 * s / MAX)
    d = diagnose_run(run)
    assert d.case == "still_falling"
    f = d.findings[0]
    assert "steps 190-240" in f.evidence and "steps 250-300" in f.evidence  # the two windows compared
    assert "num_train_epochs" in f.advice


def test_rising_loss_is_not_converging(tmp_path: Path) -> None:
    d = diagnose_run(write_log(tmp_path / "r", lambda s: 1.0 + s / 100))
    assert d.case == "rising"
    assert "never came down" in d.findings[0].evidence
    assert "learning_rate" in d.findings[0].advice


def test_loss_that_falls_then_climbs_back_is_rising(tmp_path: Path) -> None:
    d = diagnose_run(write_log(tmp_path / "r", lambda s: 1.0 + ((s - 100) / 100) ** 2 * 0.9))
    assert d.case == "rising"
    assert "at step 100" in d.findings[0].evidence


def test_nan_loss_is_rising(tmp_path: Path) -> None:
    d = diagnose_run(write_log(tmp_path / "r", lambda s: float("nan") if s >= 200 else 2.0 - s / 200))
    assert d.case == "rising" and "step 200" in d.findings[0].evidence


def test_near_zero_loss_by_a_third_is_over_fitting(tmp_path: Path) -> None:
    # perplexity below 1.1 from step 80 (27% of 300 steps, epoch 0.8)
    d = diagnose_run(write_log(tmp_path / "r", lambda s: max(0.01, 2.0 - s / 40)))
    assert d.case == "overfit_early"
    f = d.findings[0]
    assert "step 80 of 300" in f.evidence and "27%" in f.evidence
    assert "about 1" in f.advice  # the epoch where it got there, rounded up to a half, at least 1


def test_near_zero_loss_late_in_training_is_not_flagged(tmp_path: Path) -> None:
    d = diagnose_run(write_log(tmp_path / "r", lambda s: max(0.01, 2.0 - s / 130)))  # reaches ~0 at step 260
    assert "overfit_early" not in [f.case for f in d.findings]


def test_eval_loss_rising_while_train_falls_is_over_fitting(tmp_path: Path) -> None:
    run = write_log(tmp_path / "r", decay(2.0, 0.2, 0.02), lambda s: 1.0 + ((s - 100) / 200) ** 2,
                    eval_every=50)
    d = diagnose_run(run)
    assert d.case == "overfit_eval"
    f = d.findings[0]
    assert "lowest at step 100 (1)" in f.evidence and "by step 300" in f.evidence
    assert "step 100" in f.advice


def test_both_over_fitting_signs_are_reported_most_serious_first(tmp_path: Path) -> None:
    run = write_log(tmp_path / "r", lambda s: max(0.01, 2.0 - s / 40), lambda s: 0.5 + ((s - 50) / 100) ** 2)
    cases = [f.case for f in diagnose_run(run).findings]
    assert cases == ["overfit_eval", "overfit_early"]


def test_too_few_points() -> None:
    d = diagnose_rows([{"step": 5, "max_steps": 10, "loss": 2.0}, {"step": 10, "max_steps": 10, "loss": 1.0}])
    assert d.case == "too_short"


def test_missing_log_and_broken_line_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="not a tunesmith training run"):
        diagnose_run(tmp_path)
    (tmp_path / LOG_FILE).write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo\n')
    with pytest.raises(DataFormatError, match=r"train_log.jsonl:2"):
        diagnose_run(tmp_path)


def test_print_shows_verdict_evidence_and_advice(tmp_path: Path) -> None:
    from rich.console import Console

    console = Console(record=True, width=200)
    print_diagnosis(diagnose_run(write_log(tmp_path / "r", lambda s: 1.0 + s / 100)), console)
    text = console.export_text()
    assert "Not converging" in text and "evidence" in text and "learning_rate" in text


# Logged every 5 steps, one epoch of 75 steps (issue 13): LLaMA-Factory's curve and tunesmith's with
# length-grouped batches, on the same data and settings.
STEPS = [5, 10, 15, 20, 25, 30, 35, 40, 50, 60, 70, 75]
SMOOTH = [2.93, 3.24, 1.49, 0.78, 0.35, 0.14, 0.14, 0.05, 0.08, 0.03, 0.005, 0.02]
SPIKED = [2.18, 0.81, 10.61, 4.79, 0.46, 1.40, 1.48, 0.17, 0.53, 0.01, 0.14, 0.18]


def _rows(values: list[float], vocab: int | None = 262144) -> list[dict]:
    return [{"step": s, "max_steps": 75, "epoch": s / 75, "loss": v, **({"vocab_size": vocab} if vocab else {})}
            for s, v in zip(STEPS, values)]


def test_a_loss_spike_is_named_with_its_step_and_causes() -> None:
    d = diagnose_rows(_rows(SPIKED))
    assert d.case == "spike"
    f = d.findings[0]
    assert "step 15" in f.evidence and "10.61" in f.evidence and "ln(vocabulary) = 12.5" in f.evidence
    assert "shuffle" in f.advice and "learning_rate" in f.advice


def test_a_smooth_curve_with_noise_has_no_spike() -> None:
    d = diagnose_rows(_rows(SMOOTH))
    assert "spike" not in [f.case for f in d.findings]
    # tiny values wobbling (0.005 -> 0.02 is 4x) are not a spike: the rise must be over a nat too
    assert d.case != "spike"


def test_a_near_uniform_loss_after_learning_is_a_spike_without_a_big_ratio() -> None:
    values = [9.0, 5.0, 4.5, 4.0, 9.5, 3.0, 2.5, 2.0, 1.8, 1.6, 1.5, 1.5]  # 9.5 >= 0.7 * ln(262144)
    d = diagnose_rows(_rows(values))
    assert d.case == "spike" and "step 25" in d.findings[0].evidence
    assert diagnose_rows(_rows(values, vocab=None)).case != "spike"  # 9.5 / 4.5 is no 3x jump


def test_the_trainer_log_records_the_vocabulary(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from tunesmith.train.callbacks import JsonlLogger

    log = JsonlLogger(tmp_path)
    state = SimpleNamespace(global_step=1, max_steps=2, epoch=0.5)
    log.on_train_begin(None, state, None, model=SimpleNamespace(config=SimpleNamespace(vocab_size=1234)))
    log.on_log(None, state, None, logs={"loss": 2.0})
    assert json.loads((tmp_path / LOG_FILE).read_text())["vocab_size"] == 1234
