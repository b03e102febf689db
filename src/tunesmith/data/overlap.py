"""Find evaluation or benchmark items that leak into training data (exact and near matches).

A test item whose question also appears in the training data scores what the model memorised, not
what it learned. Items are compared by their prompt (the user turns) by default: answers such as
"化学" repeat legitimately across many different questions. Near matches use the same character
n-gram MinHash index as deduplication, so a benchmark of thousands of items against a training set
of tens of thousands takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunesmith.data.dedupe import Field, NearDuplicateIndex, example_text, normalize
from tunesmith.data.records import Example


@dataclass
class Leak:
    """One evaluation item found in the training data."""

    eval_index: int
    train_index: int
    similarity: float
    kind: str  # "exact" | "near"


@dataclass
class OverlapReport:
    """Every leaked evaluation item, with the training item it matches best."""

    n_eval: int
    n_train: int
    leaks: list[Leak] = field(default_factory=list)

    @property
    def n_exact(self) -> int:
        return sum(1 for x in self.leaks if x.kind == "exact")

    @property
    def n_near(self) -> int:
        return sum(1 for x in self.leaks if x.kind == "near")

    @property
    def share(self) -> float:
        return len(self.leaks) / self.n_eval if self.n_eval else 0.0

    def leaked_train_indices(self) -> set[int]:
        return {x.train_index for x in self.leaks}


def find_overlap_texts(train: list[str], evals: list[str], *, threshold: float = 0.8, near: bool = True,
                       ngram: int = 5) -> OverlapReport:
    """Match every evaluation text against the training texts."""
    first: dict[str, int] = {}
    for i, text in enumerate(train):
        first.setdefault(normalize(text), i)
    report = OverlapReport(len(evals), len(train))
    eval_keys = [normalize(t) for t in evals]
    pending = [i for i, k in enumerate(eval_keys) if k and k not in first]
    for i, key in enumerate(eval_keys):
        if key and key in first:
            report.leaks.append(Leak(i, first[key], 1.0, "exact"))
    if near and pending:
        index = NearDuplicateIndex(threshold, ngram=ngram)
        unique_train = sorted(first.values())
        sh, bands = index.prepare([train[i] for i in unique_train])
        for row, i in enumerate(unique_train):
            index.add(i, sh.of(row), bands[row])
        qsh, qbands = index.prepare([evals[i] for i in pending])
        for row, i in enumerate(pending):
            hit = index.query(qsh.of(row), qbands[row])
            if hit:
                report.leaks.append(Leak(i, hit[0][0], hit[0][1], "near"))
    report.leaks.sort(key=lambda x: x.eval_index)
    return report


def find_overlap(train: list[Example], evals: list[Example], *, part: Field = "prompt", threshold: float = 0.8,
                 near: bool = True) -> OverlapReport:
    """Evaluation examples whose ``part`` (prompt, response or full) matches a training example."""
    return find_overlap_texts([example_text(e, part) for e in train], [example_text(e, part) for e in evals],
                              threshold=threshold, near=near)
