"""The loss-curve PNG (train loss and eval loss by step)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.utils.io import atomic_path


def plot_loss(rows: list[dict[str, Any]], path: str | Path, title: str = "Training loss") -> Path | None:
    """Write a PNG of train (and eval) loss; None when there is nothing to plot."""
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        ax.plot(*zip(*train), label="train loss", color="#1f77b4", alpha=0.85)
        if len(train) >= 8:
            k = max(2, len(train) // 10)
            ys = [sum(y for _, y in train[max(0, i - k + 1):i + 1]) / len(train[max(0, i - k + 1):i + 1])
                  for i in range(len(train))]
            ax.plot([s for s, _ in train], ys, color="#1f77b4", linewidth=2.2, label="train (smoothed)")
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss", color="#d62728")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
