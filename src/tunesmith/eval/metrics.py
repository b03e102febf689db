"""Text metrics on a 0-100 scale (as LLaMA-Factory reports them).

Chinese text is segmented with jieba, other text split on words, so one metric works for both.
Predictions and references are stripped of surrounding white space before comparison (references
often end in a newline that predictions lack: PITFALLS #10).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def normalize(text: str) -> str:
    """Strip surrounding white space (the only normalization exact match applies)."""
    return text.strip()


def tokenize(text: str) -> list[str]:
    """Words for English, jieba words for Chinese, punctuation dropped."""
    text = normalize(text)
    if _CJK.search(text):
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)
        toks = [t.strip() for t in jieba.cut(text)]
    else:
        toks = re.findall(r"\w+|[^\w\s]", text.lower())
    return [t for t in toks if t and re.search(r"\w", t)]


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (0-1) over tokens."""
    p, r = tokenize(prediction), tokenize(reference)
    if not p and not r:
        return 1.0
    lcs = _lcs(p, r)
    if lcs == 0:
        return 0.0
    prec, rec = lcs / len(p), lcs / len(r)
    return 2 * prec * rec / (prec + rec)


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize(prediction) == normalize(reference))


def compute_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus-level metrics (0-100) for parallel lists of predictions and references."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    n = max(1, len(predictions))
    rl = [rouge_l(p, r) for p, r in zip(predictions, references)]
    return {
        "exact_match": round(100 * sum(exact_match(p, r) for p, r in zip(predictions, references)) / n, 2),
        "rouge-l": round(100 * sum(rl) / n, 2),
        "rouge-l>=0.99": round(100 * sum(x >= 0.99 for x in rl) / n, 2),
    }
