"""Conversion between dataset shapes: lossless within a kind, defined mappings across kinds, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.data.convert import convert_examples
from tunesmith.data.formats import convert_records
from tunesmith.data.readers import read_records
from tunesmith.data.records import to_dict
from tunesmith.utils.errors import DataFormatError


def _examples(tmp_path: Path, rows: list[dict], name: str = "in.json") -> list:
    path = tmp_path / name
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return convert_records(read_records(path))


def _roundtrip(tmp_path: Path, rows: list[dict], target: str) -> list:
    out = convert_examples(_examples(tmp_path, rows), target)
    return _examples(tmp_path, out.rows, f"out-{target}.json")


SFT = [
    {"instruction": "判断下面这道题属于哪个学科。", "input": "水的化学式是什么？", "output": "化学"},
    {"instruction": "Name the subject.", "input": "", "output": "math", "system": "You are a tutor."},
    {"instruction": "And this one?", "input": "Who was Qin Shi Huang?", "output": "history",
     "history": [["Hi", "Hello!"]]},
]


@pytest.mark.parametrize("target", ["alpaca", "sharegpt", "messages"])
def test_sft_shapes_round_trip_exactly(tmp_path: Path, target: str) -> None:
    original = [to_dict(e) for e in _examples(tmp_path, SFT)]
    back = [to_dict(e) for e in _roundtrip(tmp_path, SFT, target)]
    assert back == original
    again = [to_dict(e) for e in _examples(tmp_path, convert_examples(_roundtrip(tmp_path, SFT, target),
                                                                     "alpaca").rows, "again.json")]
    assert again == original


PREF = [
    {"question": "地球为什么会自转？", "positive_answer": "角动量守恒。", "negative_answer": "因为公转。"},
    {"question": "相对论的提出者是谁？", "positive_answer": "爱因斯坦。", "negative_answer": "牛顿。"},
]


@pytest.mark.parametrize("target", ["preference", "preference-qa"])
def test_preference_shapes_round_trip(tmp_path: Path, target: str) -> None:
    original = [to_dict(e) for e in _examples(tmp_path, PREF)]
    assert [to_dict(e) for e in _roundtrip(tmp_path, PREF, target)] == original


def test_preference_to_kto_and_back(tmp_path: Path) -> None:
    kto = convert_examples(_examples(tmp_path, PREF), "kto")
    assert [r["kto_tag"] for r in kto.rows] == [True, False, True, False]
    pairs = convert_examples(_examples(tmp_path, kto.rows, "kto.json"), "preference-qa")
    assert pairs.rows == PREF


def test_preference_and_kto_to_sft_keep_the_good_answer(tmp_path: Path) -> None:
    sft = convert_examples(_examples(tmp_path, PREF), "alpaca")
    assert [r["output"] for r in sft.rows] == ["角动量守恒。", "爱因斯坦。"]
    assert "rejected" in sft.notes[0]
    kto_rows = [{"instruction": "如何学英语？", "output": "每天阅读。", "kto_tag": True},
                {"instruction": "如何学英语？", "output": "不用学。", "kto_tag": False}]
    sft = convert_examples(_examples(tmp_path, kto_rows, "k.json"), "messages")
    assert len(sft.rows) == 1 and sft.rows[0]["messages"][-1]["content"] == "每天阅读。"


def test_kto_items_without_a_partner_are_reported(tmp_path: Path) -> None:
    rows = [{"instruction": "Q1", "output": "good", "kto_tag": True},
            {"instruction": "Q2", "output": "bad", "kto_tag": False}]
    out = convert_examples(_examples(tmp_path, rows), "preference")
    assert out.rows == [] and any("2 items without a partner" in n for n in out.notes)


def test_sft_to_preference_is_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="no rejected answer") as err:
        convert_examples(_examples(tmp_path, SFT), "preference")
    assert err.value.hint and "augment --judge" in err.value.hint


def test_multi_turn_preference_cannot_take_the_single_turn_shape(tmp_path: Path) -> None:
    rows = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"},
                               {"from": "human", "value": "2+2?"}], "chosen": "4", "rejected": "5"}]
    with pytest.raises(DataFormatError, match="one turn"):
        convert_examples(_examples(tmp_path, rows), "preference-qa")
    assert len(convert_examples(_examples(tmp_path, rows), "preference").rows) == 1


def test_unknown_target_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="unknown target"):
        convert_examples(_examples(tmp_path, SFT), "jsonl")


def test_convert_command(tmp_path: Path, cli) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from tunesmith.cli.main import app

    src = tmp_path / "pairs.json"
    src.write_text(json.dumps(PREF, ensure_ascii=False), encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["data", "convert", str(src), "--to", "kto", "--out", str(tmp_path / "k.jsonl")])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "k.jsonl").read_text(encoding="utf-8").splitlines()) == 4
    refused = cli("data", "convert", str(tmp_path / "k.jsonl"), "--to", "nonsense")
    assert refused.code == 2 and "Traceback" not in refused.err
    assert "unknown target shape 'nonsense'" in refused.err_text, refused.err
    assert "use one of alpaca, sharegpt, messages, preference, preference-qa, kto" in refused.err_text
    assert not list(tmp_path.glob("k.nonsense*"))
