"""Leak detection between training data and evaluation / benchmark data."""

from __future__ import annotations

from tunesmith.data.overlap import find_overlap, find_overlap_texts
from tunesmith.data.records import Message, SFTExample


def _sft(q: str, a: str) -> SFTExample:
    return SFTExample([Message("user", q), Message("assistant", a)])


def test_exact_and_near_leaks_are_found() -> None:
    train = ["What is the boiling point of water at sea level in degrees Celsius?",
             "Name the largest planet of the solar system and describe its atmosphere briefly.",
             "Who wrote the novel Pride and Prejudice, and in which year was it published?"]
    evals = ["what is the boiling point of water at sea level in degrees celsius",  # exact after normalizing
             "Name the largest planet of the solar system and describe its atmosphere in brief.",  # near
             "How many legs does a spider have?"]  # clean
    report = find_overlap_texts(train, evals, threshold=0.8)
    kinds = {x.eval_index: (x.train_index, x.kind) for x in report.leaks}
    assert kinds == {0: (0, "exact"), 1: (1, "near")}
    assert report.share == 2 / 3 and report.n_exact == 1 and report.n_near == 1
    assert report.leaked_train_indices() == {0, 1}


def test_shared_short_answers_are_not_leaks_when_comparing_prompts() -> None:
    train = [_sft("水的化学式是什么？", "化学"), _sft("氯元素的化学符号是什么？", "化学")]
    evals = [_sft("钠元素在周期表的第几周期？", "化学")]
    assert find_overlap(train, evals, part="prompt").leaks == []
    assert len(find_overlap(train, evals, part="response").leaks) == 1


def test_clean_split_reports_nothing(alpaca_rows: list[dict]) -> None:
    texts = [r["instruction"] + "\n" + r["input"] for r in alpaca_rows]
    report = find_overlap_texts(texts[:4], texts[4:])
    assert report.leaks == [] and report.share == 0.0


def test_overlap_command_lists_leaks_and_cleans_training_data(tmp_path, alpaca_rows) -> None:  # noqa: ANN001
    import json

    from typer.testing import CliRunner

    from tunesmith.cli.main import app

    train, test = tmp_path / "train.json", tmp_path / "test.json"
    train.write_text(json.dumps(alpaca_rows, ensure_ascii=False), encoding="utf-8")
    test.write_text(json.dumps([alpaca_rows[2], {"instruction": "New?", "input": "Unrelated question here.",
                                                 "output": "x"}], ensure_ascii=False), encoding="utf-8")
    clean = tmp_path / "clean.json"
    result = CliRunner().invoke(app, ["data", "overlap", str(train), str(test), "--clean-train", str(clean),
                                      "--json", str(tmp_path / "o.json")])
    assert result.exit_code == 0, result.output
    assert "1 of 2 items" in " ".join(result.output.split())
    assert json.loads(clean.read_text(encoding="utf-8")) == alpaca_rows[:2] + alpaca_rows[3:]
    (report,) = json.loads((tmp_path / "o.json").read_text())["files"]
    assert report["leaks"][0]["kind"] == "exact"
