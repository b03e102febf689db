"""Text metrics on a 0-100 scale (as LLaMA-Factory reports them), for English and Chinese.

Every metric compares one prediction with one reference and is averaged over the examples:

- ``rouge-1`` / ``rouge-2``: F1 of the clipped unigram / bigram overlap.
- ``rouge-l``: F1 of the longest common subsequence of tokens.
- ``bleu-4``: sentence BLEU (geometric mean of clipped 1- to 4-gram precisions times the brevity
  penalty), with NLTK's ``method3`` smoothing for orders without a match, as LLaMA-Factory uses.
- ``exact_match``: the texts are equal after stripping surrounding white space (references often end
  in a newline the prediction lacks); ``utils/text.py`` holds the one definition, GRPO's reward uses it too.
- ``rouge-l>=0.99``: the share of answers whose ROUGE-L is at least 0.99 ("as good as exact").
- ``similarity``: mean cosine similarity of MiniLM sentence embeddings (see ``similarity.py``).

Tokens: Chinese text is segmented with jieba, other text split into words; both lower-cased, with
punctuation dropped. So "数学" scores against "数学" at the word level, not per character.

Short answers: LLaMA-Factory scores a set of 100% exact one-word Chinese answers at
BLEU-4 67 and ROUGE-2 50, because a one-word answer has no bigram or 4-gram to match. Here an
n-gram order longer than both texts is not counted: ROUGE-2 of two one-word texts is their ROUGE-1,
and BLEU uses the orders up to the prediction's length (sacrebleu's "effective order"). An exact
answer therefore scores 100 on every metric, and a wrong one-word answer 0.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from tunesmith.utils.text import exact_match, normalize

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
TEXT_METRICS = ("rouge-1", "rouge-2", "rouge-l", "bleu-4", "exact_match", "rouge-l>=0.99")
# Keys of metrics.json, in report order. Lower is better only for perplexity.
METRIC_KEYS = (*TEXT_METRICS, "similarity", "perplexity")
LOWER_IS_BETTER = frozenset({"perplexity"})




def tokenize(text: str) -> list[str]:
    """Words for English, jieba words for Chinese; lower-cased, punctuation dropped."""
    text = normalize(text).lower()
    if _CJK.search(text):
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)
        toks = [t.strip() for t in jieba.cut(text)]
    else:
        toks = re.findall(r"\w+|[^\w\s]", text)
    return [t for t in toks if t and re.search(r"\w", t)]


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _f1(overlap: int, n_pred: int, n_ref: int) -> float:
    if overlap == 0:
        return 0.0
    p, r = overlap / n_pred, overlap / n_ref
    return 2 * p * r / (p + r)


def _rouge_n_tokens(p: Sequence[str], r: Sequence[str], n: int) -> float:
    if not p and not r:
        return 1.0
    if len(p) < n and len(r) < n:  # no n-gram on either side: score at the longest order they have
        return _rouge_n_tokens(p, r, n - 1)
    pg, rg = _ngrams(p, n), _ngrams(r, n)
    if not pg or not rg:
        return 0.0
    return _f1(sum((pg & rg).values()), sum(pg.values()), sum(rg.values()))


def rouge_n(prediction: str, reference: str, n: int) -> float:
    """ROUGE-N F1 (0-1) over tokens."""
    return _rouge_n_tokens(tokenize(prediction), tokenize(reference), n)


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


def _rouge_l_tokens(p: Sequence[str], r: Sequence[str]) -> float:
    if not p and not r:
        return 1.0
    if not p or not r:
        return 0.0
    return _f1(_lcs(p, r), len(p), len(r))


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (0-1) over tokens."""
    return _rouge_l_tokens(tokenize(prediction), tokenize(reference))


def _bleu_tokens(p: Sequence[str], r: Sequence[str], max_order: int = 4) -> float:
    if not p and not r:
        return 1.0
    if not p or not r:
        return 0.0
    order = min(max_order, len(p))  # effective order: only orders the prediction has n-grams of
    log_sum, zeros = 0.0, 0
    for n in range(1, order + 1):
        pg, rg = _ngrams(p, n), _ngrams(r, n)
        matches, total = sum((pg & rg).values()), sum(pg.values())
        if matches == 0:
            if n == 1:
                return 0.0  # nothing in common: no smoothing makes this a partial match
            zeros += 1
            precision = 1 / (2 ** zeros * total)  # NLTK method3 (NIST geometric smoothing)
        else:
            precision = matches / total
        log_sum += math.log(precision)
    brevity = 1.0 if len(p) > len(r) else math.exp(1 - len(r) / len(p))
    return brevity * math.exp(log_sum / order)


def bleu4(prediction: str, reference: str) -> float:
    """Sentence BLEU-4 (0-1) over tokens, with effective order and method3 smoothing."""
    return _bleu_tokens(tokenize(prediction), tokenize(reference))


def score_pair(prediction: str, reference: str) -> dict[str, float]:
    """Every text metric for one example, each 0-100 (tokenizes each text once)."""
    p, r = tokenize(prediction), tokenize(reference)
    rl = _rouge_l_tokens(p, r)
    return {
        "rouge-1": 100 * _rouge_n_tokens(p, r, 1),
        "rouge-2": 100 * _rouge_n_tokens(p, r, 2),
        "rouge-l": 100 * rl,
        "bleu-4": 100 * _bleu_tokens(p, r),
        "exact_match": 100 * exact_match(prediction, reference),
        "rouge-l>=0.99": 100.0 * (rl >= 0.99),
    }


def mean_scores(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Average per-example scores key by key, rounded to 4 decimals."""
    if not rows:
        return {}
    return {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in rows[0]}


def compute_metrics(predictions: Sequence[str], references: Sequence[str], *,
                    similarity: bool = True) -> dict[str, float]:
    """Corpus metrics (0-100) for parallel lists of predictions and references.

    Returns ``rouge-1``, ``rouge-2``, ``rouge-l``, ``bleu-4``, ``exact_match``, ``rouge-l>=0.99`` and,
    unless ``similarity=False``, ``similarity`` (mean cosine x 100 with the bundled MiniLM model).
    Perplexity needs the model that made the predictions; ``tunesmith eval`` adds it
    (``tunesmith.eval.perplexity.reference_perplexity``).
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    out = mean_scores([score_pair(p, r) for p, r in zip(predictions, references)])
    if not out:
        out = dict.fromkeys(TEXT_METRICS, 0.0)
    if similarity:
        from tunesmith.eval.similarity import similarities

        sims = similarities(list(predictions), list(references))
        out["similarity"] = round(100 * sum(sims) / max(1, len(sims)), 4)
    return out
