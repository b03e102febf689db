"""Metric values against hand-computed cases, in English and Chinese."""

from __future__ import annotations

import math

import pytest

from tunesmith.eval.metrics import (
    bleu4,
    compute_metrics,
    exact_match,
    rouge_l,
    rouge_n,
    score_pair,
    tokenize,
)

METRICS = ["rouge-1", "rouge-2", "rouge-l", "bleu-4", "exact_match", "rouge-l>=0.99"]  # every text metric, in order


def test_tokenize_english_words_lowercased_without_punctuation() -> None:
    assert tokenize("  The cat, sat!\n") == ["the", "cat", "sat"]


def test_tokenize_chinese_uses_jieba_words_not_characters() -> None:
    assert tokenize("我爱北京天安门") == ["我", "爱", "北京", "天安门"]
    assert tokenize("水的化学式是什么？") == ["水", "的", "化学式", "是", "什么"]


def test_english_sentence_by_hand() -> None:
    # pred: the cat sat on the mat / ref: the cat is on the mat (6 tokens each)
    pred, ref = "The cat sat on the mat.", "the cat is on the mat"
    # unigrams: the x2, cat, on, mat match -> 5/6 both ways
    assert rouge_n(pred, ref, 1) == pytest.approx(5 / 6)
    # bigrams: the-cat, on-the, the-mat of 5 each side
    assert rouge_n(pred, ref, 2) == pytest.approx(3 / 5)
    # LCS: the cat on the mat = 5
    assert rouge_l(pred, ref) == pytest.approx(5 / 6)
    # BLEU: p1=5/6, p2=3/5, p3=1/4 (on-the-mat), p4=0 -> method3: 1/(2*3); same length: no penalty
    expected = (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25
    assert bleu4(pred, ref) == pytest.approx(expected)
    assert exact_match(pred, ref) == 0.0


def test_chinese_sentence_by_hand() -> None:
    # pred: 我 爱 北京 天安门 (4 words) / ref: 我 爱 北京 (3 words)
    pred, ref = "我爱北京天安门", "我爱北京"
    assert rouge_n(pred, ref, 1) == pytest.approx(2 * (3 / 4) * 1 / (3 / 4 + 1))
    assert rouge_n(pred, ref, 2) == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert rouge_l(pred, ref) == pytest.approx(6 / 7)
    # p1=3/4, p2=2/3, p3=1/2, p4: no match -> 1/(2*1); prediction longer: no brevity penalty
    assert bleu4(pred, ref) == pytest.approx((3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25)


def test_brevity_penalty_for_a_short_prediction() -> None:
    # pred: a b (2 tokens) inside ref: a b c d e -> effective order 2, precisions 1, BP = exp(1 - 5/2)
    assert bleu4("a b", "a b c d e") == pytest.approx(math.exp(1 - 5 / 2))


def test_exact_one_word_answers_score_100_everywhere() -> None:
    # LLaMA-Factory reports BLEU-4 67 and ROUGE-2 50 for a 100% exact set of one-word answers.
    preds = ["数学", "化学", "history", "地理"]
    refs = ["数学\n", "化学", "History", " 地理 "]
    m = compute_metrics(preds, refs, similarity=False)
    assert m["rouge-1"] == m["rouge-2"] == m["rouge-l"] == m["bleu-4"] == 100.0
    assert m["rouge-l>=0.99"] == 100.0
    assert m["exact_match"] == 75.0  # "History" differs in case: exact match only strips white space


def test_wrong_one_word_answer_scores_zero_not_smoothed_up() -> None:
    assert score_pair("物理", "数学") == dict.fromkeys(METRICS, 0.0)


def test_corpus_metrics_average_examples_on_a_0_100_scale() -> None:
    preds = ["The cat sat on the mat.", "我爱北京天安门", "数学"]
    refs = ["the cat is on the mat", "我爱北京", "数学"]
    m = compute_metrics(preds, refs, similarity=False)
    assert m["rouge-1"] == pytest.approx(100 * (5 / 6 + 6 / 7 + 1) / 3, abs=1e-4)
    assert m["rouge-2"] == pytest.approx(100 * (3 / 5 + 4 / 5 + 1) / 3, abs=1e-4)
    assert m["exact_match"] == pytest.approx(100 / 3, abs=1e-4)
    assert m["rouge-l>=0.99"] == pytest.approx(100 / 3, abs=1e-4)
    assert list(m) == METRICS


def test_empty_texts() -> None:
    assert score_pair("", "")["bleu-4"] == 100.0
    assert score_pair("", "answer") == dict.fromkeys(METRICS, 0.0)
    assert compute_metrics([], [], similarity=False) == dict.fromkeys(METRICS, 0.0)


def test_mismatched_lengths_are_an_error() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        compute_metrics(["a", "b"], ["a"], similarity=False)


def test_similarity_with_the_bundled_minilm() -> None:
    from tunesmith.eval.similarity import similarities

    same, para, other = similarities(["The cat sat on the mat."] * 3,
                                     ["The cat sat on the mat.", "A cat is sitting on a mat.",
                                      "Stock prices fell sharply today."])
    assert same == pytest.approx(1.0, abs=1e-5)
    assert para > 0.8 > 0.3 > other
    m = compute_metrics(["数学", "physics"], ["数学", "physics"])
    assert m["similarity"] == pytest.approx(100.0, abs=1e-3)
