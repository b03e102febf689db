"""Read a run's loss curve and say which of the notes' cases applies, with the evidence.

The notes judge a fine-tune by its loss curve:

- **rising** (or never coming down): not converging; lower the learning rate or check the data.
- **spike**: one logged loss several times the ones before it, or close to ln(vocabulary) (the model
  predicting almost uniformly, or confidently wrong) after the loss had come down. The end of the
  curve can look healthy while the spike cost the run what it had learnt (a 10-14 nat spike on a
  270M model cut one epoch's held-out exact match from ~97% to 88%).
- **overfit_eval**: eval loss rising while train loss falls; over-fitting.
- **overfit_early**: perplexity near 1 and loss near 0 by a third of training; over-fitting, cut the
  epochs to about a third.
- **still_falling**: the loss is still clearly going down at the end; more epochs or more data.
- **healthy**: it fell and flattened out (and eval loss did not turn up).

Input is the ``train_log.jsonl`` that every run writes (``train/callbacks.py``). Each finding
carries the step numbers and values it rests on, so a user can check it against the plot.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunesmith.utils.errors import DataFormatError

# Written by train/callbacks.py; not imported from there, because that module loads transformers
# and `tunesmith diagnose` should answer in a blink (a test checks the two names agree).
LOG_FILE = "train_log.jsonl"

NEAR_ONE_PERPLEXITY = 1.1  # "perplexity near 1": loss <= ln(1.1) = 0.095
EARLY_SHARE = 1 / 3  # "by a third of training"
TAIL_SHARE = 0.2  # the last 20% of steps is "the end" of the curve
STILL_FALLING_SHARE = 0.05  # the end still holds >5% of the whole fall
NEVER_FELL = 0.98  # end/start above this: the loss did not come down
REBOUND_SHARE = 0.5  # climbed back more than half of what it had fallen
SPIKE_RATIO = 3.0  # a logged loss over 3x the median of the points before it ...
SPIKE_MIN_RISE = 1.0  # ... and at least 1 nat above it (noise on a near-zero loss is not a spike)
SPIKE_LOOKBACK = 5  # points the baseline median is taken over
NEAR_UNIFORM = 0.7  # a loss above 70% of ln(vocabulary) once it had fallen below half of it
EVAL_RISE = 0.10  # eval loss >10% above its minimum (and >0.02 absolute)

SEVERITY = {"rising": 0, "spike": 1, "overfit_eval": 2, "overfit_early": 3, "still_falling": 4, "healthy": 5,
            "too_short": 6}
TITLES = {
    "rising": "Not converging: the loss is rising",
    "spike": "Loss spike: the loss jumped far above its recent values",
    "overfit_eval": "Over-fitting: eval loss rises while train loss falls",
    "overfit_early": "Over-fitting: loss near 0 (perplexity near 1) by a third of training",
    "still_falling": "Still learning: the loss is still falling at the end",
    "healthy": "Healthy: the loss fell and flattened out",
    "too_short": "Too few logged points to judge the curve",
}


@dataclass
class Finding:
    """One case of the notes that applies, the numbers it rests on, and what to do."""

    case: str
    evidence: str
    advice: str

    @property
    def title(self) -> str:
        return TITLES[self.case]


@dataclass
class Diagnosis:
    """Everything ``diagnose_run`` found; ``case`` is the most serious finding."""

    run_dir: str
    findings: list[Finding]
    steps: int
    max_steps: int
    first_loss: float | None = None
    final_loss: float | None = None
    final_eval_loss: float | None = None

    @property
    def case(self) -> str:
        return self.findings[0].case

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["case"] = self.case
        for f, d in zip(self.findings, out["findings"]):
            d["title"] = f.title
        return out


def _points(rows: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r[key])) for r in rows if key in r and r.get("step") is not None]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _window(points: list[tuple[int, float]], lo: float, hi: float) -> list[tuple[int, float]]:
    """Points with lo < step <= hi (falls back to the nearest point when empty)."""
    inside = [p for p in points if lo < p[0] <= hi]
    return inside or [min(points, key=lambda p: abs(p[0] - hi))]


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _rising(train: list[tuple[int, float]], last: int) -> Finding | None:
    bad = next(((s, v) for s, v in train if not math.isfinite(v)), None)
    if bad:
        return Finding("rising", f"loss became {bad[1]} at step {bad[0]}",
                       "lower learning_rate (e.g. by 2-10x) and check the data for broken examples")
    n = max(1, len(train) // 5)
    start, end = train[:n], train[-n:]
    s, e = _mean([v for _, v in start]), _mean([v for _, v in end])
    lo_step, lo = min(train, key=lambda p: p[1])
    span = f"steps {start[0][0]}-{start[-1][0]}"
    if start[-1][0] < lo_step < end[0][0] and e - lo > REBOUND_SHARE * (s - lo) and e > 1.2 * lo:
        return Finding("rising", f"loss fell from {_fmt(s)} to {_fmt(lo)} at step {lo_step}, then rose to "
                       f"{_fmt(e)} by step {last}",
                       "lower learning_rate or raise warmup_ratio; check the data; use the checkpoint "
                       f"near step {lo_step}")
    if e >= NEVER_FELL * s:
        return Finding("rising", f"loss {_fmt(s)} at the start ({span}) and {_fmt(e)} at the end "
                       f"(steps {end[0][0]}-{end[-1][0]}): it never came down",
                       "lower learning_rate (e.g. by 2-10x); check that answers match their prompts "
                       "('tunesmith data check')")
    return None


def _spike(train: list[tuple[int, float]], vocab_size: int | None) -> Finding | None:
    """The worst logged loss far above the median of the points before it (see SPIKE_*)."""
    uniform = math.log(vocab_size) if vocab_size and vocab_size > 1 else None
    worst: tuple[float, int, float, float] | None = None  # (ratio, step, value, baseline)
    for i in range(2, len(train)):
        step, value = train[i]
        before = sorted(v for _, v in train[max(0, i - SPIKE_LOOKBACK):i])
        base = before[len(before) // 2]
        jump = value > SPIKE_RATIO * base and value - base >= SPIKE_MIN_RISE
        near_uniform = uniform is not None and value >= NEAR_UNIFORM * uniform and base < 0.5 * uniform
        if (jump or near_uniform) and (worst is None or value / max(base, 1e-9) > worst[0]):
            worst = (value / max(base, 1e-9), step, value, base)
    if worst is None:
        return None
    _, step, value, base = worst
    uniform_note = f"; ln(vocabulary) = {uniform:.1f}, so the model was nearly uniform or confidently " \
        "wrong" if uniform and value >= NEAR_UNIFORM * uniform else ""
    return Finding("spike", f"loss {_fmt(value)} at step {step}, against a median of {_fmt(base)} over the "
                   f"{SPIKE_LOOKBACK} points before it{uniform_note}",
                   "usual causes: batches of one kind of example after another (data sorted or grouped by "
                   "task or length: shuffle it), a learning rate too high for the batch size (lower "
                   "learning_rate, raise warmup_ratio or gradient_accumulation_steps), or a broken example "
                   "in the batches at that step ('tunesmith data check')")


def _overfit_eval(train: list[tuple[int, float]], evals: list[tuple[int, float]]) -> Finding | None:
    if len(evals) < 3:
        return None
    lo_step, lo = min(evals, key=lambda p: p[1])
    last_step, last = evals[-1]
    if last_step <= lo_step or last <= lo * (1 + EVAL_RISE) or last - lo <= 0.02:
        return None
    t_at_lo = min(train, key=lambda p: abs(p[0] - lo_step))[1]
    t_end = train[-1][1]
    if t_end >= t_at_lo:
        return None  # both rising: that is the "rising" case, not over-fitting
    return Finding("overfit_eval", f"eval_loss was lowest at step {lo_step} ({_fmt(lo)}) and rose to "
                   f"{_fmt(last)} by step {last_step}, while train loss fell {_fmt(t_at_lo)} -> {_fmt(t_end)}",
                   f"stop near step {lo_step} (fewer num_train_epochs or that checkpoint); add more varied "
                   "data, or raise lora_dropout / weight_decay")


def _overfit_early(rows: list[dict[str, Any]], train: list[tuple[int, float]], max_steps: int) -> Finding | None:
    limit = math.log(NEAR_ONE_PERPLEXITY)
    hit = next((r for r in rows if "loss" in r and math.isfinite(r["loss"]) and r["loss"] <= limit), None)
    if hit is None or hit["step"] > EARLY_SHARE * max_steps:
        return None
    epoch = float(hit.get("epoch") or 0.0)
    later = [v for s, v in train if s > hit["step"]]
    stays = f", and stays there (max {_fmt(max(later))} after)" if later else ""
    suggest = max(1.0, math.ceil(epoch * 2) / 2) if epoch else None
    cut = f"cut num_train_epochs to about {suggest:g} (the epoch where it got there)" if suggest else \
        "cut num_train_epochs to about a third"
    return Finding("overfit_early", f"loss {_fmt(hit['loss'])} (perplexity {_fmt(math.exp(hit['loss']))}) at step "
                   f"{hit['step']} of {max_steps} ({100 * hit['step'] / max_steps:.0f}% of training){stays}",
                   f"{cut}; more varied data helps more than more epochs")


def _still_falling(train: list[tuple[int, float]], last: int) -> Finding | None:
    tail = _window(train, (1 - TAIL_SHARE) * last, last)
    before = _window(train, (1 - 2 * TAIL_SHARE) * last, (1 - TAIL_SHARE) * last)
    n = max(1, len(train) // 5)
    start = _mean([v for _, v in train[:n]])
    low = min(v for _, v in train)
    fall = start - low
    a, b = _mean([v for _, v in before]), _mean([v for _, v in tail])
    if fall <= 0 or (a - b) / fall <= STILL_FALLING_SHARE:
        return None
    return Finding("still_falling", f"mean loss {_fmt(a)} over steps {before[0][0]}-{before[-1][0]} and "
                   f"{_fmt(b)} over steps {tail[0][0]}-{tail[-1][0]}: the last 20% of steps still took "
                   f"{100 * (a - b) / fall:.0f}% of the whole fall ({_fmt(start)} -> {_fmt(low)})",
                   "train longer (num_train_epochs) or add more data")


def diagnose_rows(rows: list[dict[str, Any]], run_dir: str = "") -> Diagnosis:
    """Diagnose a list of train_log.jsonl rows (see module docstring for the cases)."""
    train = _points(rows, "loss")
    evals = [p for p in _points(rows, "eval_loss") if math.isfinite(p[1])]
    last = max((int(r["step"]) for r in rows if "step" in r), default=0)
    max_steps = max([int(r.get("max_steps") or 0) for r in rows] + [last]) or 1
    finite = [v for _, v in train if math.isfinite(v)]
    diag = Diagnosis(run_dir, [], last, max_steps, finite[0] if finite else None, finite[-1] if finite else None,
                     evals[-1][1] if evals else None)
    if len(train) < 3:
        diag.findings.append(Finding("too_short", f"{len(train)} train loss value(s) logged over {last} steps",
                                     "log more often (logging_steps) or train longer"))
        return diag
    vocab = max((int(r["vocab_size"]) for r in rows if r.get("vocab_size")), default=None)
    found = [_rising(train, last), _spike(train, vocab)]
    if found[0] is None:
        found += [_overfit_eval(train, evals), _overfit_early(rows, train, max_steps), _still_falling(train, last)]
    diag.findings = sorted([f for f in found if f], key=lambda f: SEVERITY[f.case])
    if not diag.findings:
        tail = _window(train, (1 - TAIL_SHARE) * last, last)
        eval_note = f"; eval_loss {_fmt(evals[0][1])} -> {_fmt(evals[-1][1])}" if evals else ""
        diag.findings.append(Finding(
            "healthy", f"loss {_fmt(diag.first_loss or 0)} -> {_fmt(diag.final_loss or 0)}, flat over the last "
            f"20% of steps ({tail[0][0]}-{tail[-1][0]}){eval_note}",
            "nothing to change; judge the answers with 'tunesmith eval'"))
    return diag


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a train_log.jsonl; a malformed line is a DataFormatError naming the line."""
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{path}:{i}: not a JSON line ({exc.msg})",
                                  hint="the log may be cut short by a crash; delete the broken line") from exc
        if isinstance(row, dict):
            rows.append(row)
    return rows


def diagnose_run(run_dir: str | Path) -> Diagnosis:
    """Diagnose a finished (or running) training run from its train_log.jsonl."""
    path = Path(run_dir) / LOG_FILE
    if not path.exists():
        raise DataFormatError(f"{path} does not exist: {run_dir!s} is not a tunesmith training run",
                              hint="pass the output_dir of a 'tunesmith train' run")
    return diagnose_rows(read_rows(path), str(run_dir))


def print_diagnosis(diag: Diagnosis, console: Any = None) -> None:
    """Print the diagnosis as a small panel: verdict, evidence, advice (English and Chinese labels)."""
    from rich.panel import Panel

    from tunesmith.utils.console import console as default_console

    out = console or default_console
    color = {"healthy": "green", "still_falling": "yellow", "too_short": "dim"}.get(diag.case, "red")
    lines = []
    for f in diag.findings:
        lines.append(f"[bold {color if f is diag.findings[0] else 'yellow'}]{f.title}[/]")
        lines.append(f"  evidence 依据: {f.evidence}")
        lines.append(f"  advice   建议: {f.advice}")
    out.print(Panel("\n".join(lines), title="Loss curve diagnosis 训练曲线诊断", title_align="left",
                    border_style=color, expand=False))


def report_run(run_dir: str | Path, console: Any = None) -> Diagnosis | None:
    """Diagnose and print a run at the end of training; a run without a usable log only gets a note."""
    try:
        diag = diagnose_run(run_dir)
    except DataFormatError as exc:
        from tunesmith.utils.console import console as default_console

        (console or default_console).print(f"[dim]No loss-curve diagnosis: {exc.message}[/dim]")
        return None
    print_diagnosis(diag, console)
    return diag
