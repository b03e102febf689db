"""Exact and near-duplicate detection: what counts as a duplicate, what does not, and how the work grows at scale."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from tunesmith.data.dedupe import (
    NearDuplicateIndex,
    example_text,
    find_duplicates,
    jaccard,
    lsh_shape,
    normalize,
    shingle_hashes,
    shingles,
)
from tunesmith.data.records import Message, SFTExample


def test_normalize_folds_case_width_and_punctuation_but_keeps_symbols() -> None:
    assert normalize("Ｈｅｌｌｏ，  WORLD!!") == normalize("hello world")
    assert normalize("计算 5 × 6。") != normalize("计算 5 + 6。"), "math symbols carry meaning"


def test_shingle_hashes_match_python_shingle_sets() -> None:
    texts = ["Hello, World! hello world", "abc", "", "判断下面这道题属于哪个学科", "What is 2 + 3?"]
    sh = shingle_hashes(texts)
    for i, text in enumerate(texts):
        assert len(sh.of(i)) == len(shingles(text)), text
    a, b = "the quick brown fox jumps over the lazy dog", "the quick brown fox jumped over the lazy dog"
    sh = shingle_hashes([a, b])
    exact = len(shingles(a) & shingles(b)) / len(shingles(a) | shingles(b))
    assert jaccard(sh.of(0), sh.of(1)) == pytest.approx(exact, abs=0.02)


def test_exact_duplicates_after_normalization_are_found() -> None:
    texts = ["What is 2 + 3?", "what is 2 + 3", "What is 2 + 4?", "WHAT IS 2 + 3 ?"]
    result = find_duplicates(texts, near=False)
    assert result.kept == [0, 2]
    assert result.n_exact == 2 and result.n_near == 0
    assert [d[0] for d in result.groups[0].duplicates] == [1, 3]


def test_near_duplicates_are_found_and_different_texts_kept() -> None:
    base = ("请根据以下已知内容回答问题并说明原因。已知内容：长江是中国最长的河流，"
            "全长约六千三百公里，流经十一个省级行政区。")
    near = base.replace("六千三百", "六千三百余")
    other = "Explain why the sky looks blue during the day and red at sunset, in two sentences."
    result = find_duplicates([base, other, near], threshold=0.8)
    assert result.kept == [0, 1]
    (group,) = result.groups
    assert group.keep == 0 and group.duplicates[0][0] == 2 and group.duplicates[0][2] == "near"
    assert 0.8 <= group.duplicates[0][1] < 1.0


def test_nothing_is_flagged_in_varied_data(alpaca_rows: list[dict]) -> None:
    texts = [r["instruction"] + "\n" + r["input"] + "\n" + r["output"] for r in alpaca_rows]
    result = find_duplicates(texts)
    assert result.kept == list(range(len(texts))) and not result.groups


def test_example_text_parts() -> None:
    ex = SFTExample([Message("user", "Q1"), Message("assistant", "A1"), Message("user", "Q2"),
                     Message("assistant", "A2")], system="S")
    assert example_text(ex, "prompt") == "Q1\nQ2"
    assert example_text(ex, "response") == "A2"
    assert example_text(ex, "full") == "S\nQ1\nQ2\nA1\nA2"


def test_lsh_bands_sit_below_the_threshold() -> None:
    for threshold in (0.5, 0.8, 0.9):
        bands, rows = lsh_shape(threshold, 128)
        assert bands * rows == 128
        assert (1 / bands) ** (1 / rows) <= threshold - 0.1 + 1e-9


def test_twenty_thousand_examples_lsh_compares_few_pairs_and_finds_every_near_duplicate() -> None:
    rng = random.Random(0)
    words = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma "
             "tau upsilon phi chi psi omega 学习 数据 模型 训练 评估").split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(20, 60))) for _ in range(20_000)]
    planted = []
    for k in range(200):
        t = texts[k].split()
        t[rng.randrange(len(t))] = "zzz"
        texts.append(" ".join(t))
        planted.append(len(texts) - 1)
    # Scale is a count, not a clock (benchmarks/dedupe_speed.py times it): the LSH bands put only a few
    # thousand of the 204 million pairs in one bucket (4047 here), so the work grows with the texts.
    index = NearDuplicateIndex(0.85)
    _, bands = index.prepare(texts)
    colliding = sum(n * (n - 1) // 2 for band in range(index.bands)
                    for n in Counter(row[band] for row in bands).values())
    assert colliding < len(texts), f"{colliding} candidate pairs for {len(texts)} texts: the search is quadratic"
    result = find_duplicates(texts, threshold=0.85)
    flagged = {d[0] for g in result.groups for d in g.duplicates}
    def exact_jaccard(x: str, y: str) -> float:
        a, b = shingles(x), shingles(y)
        return len(a & b) / len(a | b)

    truly_near = {i for k, i in zip(range(200), planted) if exact_jaccard(texts[k], texts[i]) >= 0.85}
    assert truly_near <= flagged, "every planted near duplicate above the threshold is found"
    assert len(flagged - set(planted)) == 0, "random texts are not flagged"
    assert np.all(np.diff(result.kept) > 0)


def test_dedupe_command_writes_the_kept_records_in_the_input_format(tmp_path, alpaca_rows) -> None:  # noqa: ANN001
    import json

    from typer.testing import CliRunner

    from tunesmith.cli.main import app

    rows = alpaca_rows + [dict(alpaca_rows[0]), {**alpaca_rows[1], "output": "化学。"}]
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = CliRunner().invoke(app, ["data", "dedupe", str(src), "--threshold", "0.8"])
    assert result.exit_code == 0, result.output
    kept = [json.loads(line) for line in (tmp_path / "d.dedup.jsonl").read_text(encoding="utf-8").splitlines()]
    assert kept == alpaca_rows
    assert "removed 2 exact and 0 near duplicates" in " ".join(result.output.split()), "punctuation is folded"
