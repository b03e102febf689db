"""The one definition of "the same answer", shared by evaluation (``exact_match`` metric) and GRPO rewards.

References often end in a newline that a generated answer lacks (or the other way round), so both
sides are stripped of surrounding white space before comparing; nothing else is changed: case,
inner spacing and punctuation count, as they do for a user reading the answer.
"""

from __future__ import annotations


def normalize(text: str) -> str:
    """Strip surrounding white space (the only normalization exact match applies)."""
    return text.strip()


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the answers are the same after ``normalize``, else 0.0."""
    return float(normalize(prediction) == normalize(reference))
