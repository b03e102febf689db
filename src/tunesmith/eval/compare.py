"""``tunesmith eval --compare``: several models on the same split, and what the numbers say.

Every model answers the same examples with the same generation settings; the result says plainly
when a tuned model scores below the base (the notes: that means the data or hyper-parameters are
wrong) and picks the examples on which the models disagree most, for a human to read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunesmith.config.schema import Config
from tunesmith.data.records import SFTExample
from tunesmith.eval.evaluate import BASE, ModelEval, Target, evaluate_target
from tunesmith.eval.metrics import LOWER_IS_BETTER

PRIMARY = "rouge-l"  # the metric the notes read first
FOLLOW_UP = "check the data and the hyper-parameters before training longer"


@dataclass
class Comparison:
    """Several models' results on one split."""

    split: str
    evals: list[ModelEval]

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.evals]

    def metric_keys(self) -> list[str]:
        keys: list[str] = []
        for e in self.evals:
            keys += [k for k, v in e.metrics.items() if k not in keys and isinstance(v, (int, float))]
        return keys

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "n": len(self.evals[0].rows) if self.evals else 0,
                "models": [{"label": e.label, "metrics": e.metrics, **e.info} for e in self.evals],
                "verdicts": verdicts(self), "examples": differing_examples(self)}


def run_compare(cfg: Config, targets: list[Target], examples: list[SFTExample], judge: Any = None) -> Comparison:
    """Evaluate every target on the same examples (one model in memory at a time)."""
    evals = []
    for target in targets:
        ev = evaluate_target(cfg, target, examples)
        if judge is not None:
            judge(ev)
        evals.append(ev)
    return Comparison(cfg.eval.eval_split, evals)


def better(key: str, a: float, b: float) -> bool:
    """Whether value a is better than b for this metric."""
    return a < b if key in LOWER_IS_BETTER else a > b


def verdicts(cmp: Comparison) -> list[str]:
    """Plain sentences: each tuned model against the base (or the best model when there is no base)."""
    base = next((e for e in cmp.evals if e.label == BASE), None)
    keys = cmp.metric_keys()
    out = []
    if base is None:
        ranked = sorted(cmp.evals, key=lambda e: -(e.metrics.get(PRIMARY) or 0))
        if ranked:
            out.append(f"Best on {PRIMARY}: {ranked[0].label} ({ranked[0].metrics.get(PRIMARY, 0):.1f}).")
        return out
    for ev in cmp.evals:
        if ev is base:
            continue
        shared = [k for k in keys if isinstance(ev.metrics.get(k), (int, float))
                  and isinstance(base.metrics.get(k), (int, float))]
        worse = [k for k in shared if better(k, base.metrics[k], ev.metrics[k])]
        wins = [k for k in shared if better(k, ev.metrics[k], base.metrics[k])]
        t, b = ev.metrics.get(PRIMARY, 0.0), base.metrics.get(PRIMARY, 0.0)
        if t < b:
            out.append(f"WORSE THAN BASE: {ev.label} scores below the untuned base model on {PRIMARY} "
                       f"({t:.1f} vs {b:.1f}); worse on {', '.join(worse)}. The notes: a tuned score below the "
                       f"untrained one means the data or hyper-parameters are wrong; {FOLLOW_UP}.")
        elif t == b and not wins:
            out.append(f"NO GAIN: {ev.label} scores the same as the base model on {PRIMARY} ({t:.1f}); "
                       "the fine-tune did not change the answers measurably.")
        else:
            tail = f"; but worse on {', '.join(worse)}" if worse else ""
            out.append(f"BETTER THAN BASE: {ev.label} beats the base model on {PRIMARY} ({t:.1f} vs {b:.1f}) "
                       f"and on {len(wins)} of {len(shared)} metrics{tail}.")
    return out


def differing_examples(cmp: Comparison, k: int = 10) -> list[dict[str, Any]]:
    """The k examples where the models' ROUGE-L (then similarity) differ most, with every answer."""
    if len(cmp.evals) < 2 or not cmp.evals[0].rows:
        return []

    def spread(i: int, key: str) -> float:
        vals = [e.rows[i]["scores"].get(key, 0.0) for e in cmp.evals]
        return max(vals) - min(vals)

    n = len(cmp.evals[0].rows)
    order = sorted(range(n), key=lambda i: (-spread(i, PRIMARY), -spread(i, "similarity"), i))[:k]
    out = []
    for i in order:
        first = cmp.evals[0].rows[i]
        out.append({"index": i, "prompt": first.get("prompt", ""), "reference": first["reference"],
                    "spread": round(spread(i, PRIMARY), 2),
                    "answers": [{"label": e.label, "prediction": e.rows[i]["prediction"],
                                 PRIMARY: e.rows[i]["scores"].get(PRIMARY)} for e in cmp.evals]})
    return out
