"""dataset_info.json: a misspelt column or tag name is an error, LLaMA-Factory names tunesmith does not
read and hub-only keys are reported once; pt honours packing: false."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.data.registry import load_examples
from tunesmith.data.tokenize import chunk_text
from tunesmith.utils import console as console_mod
from tunesmith.utils.errors import DataFormatError


@pytest.fixture(autouse=True)
def fresh_notes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_mod, "_told", set())


def _registry(tmp_path: Path, entry: dict) -> Path:
    (tmp_path / "d.json").write_text(json.dumps([{"question": "2+2?", "answer": "4"}]))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"toy": {"file_name": "d.json", **entry}}))
    return tmp_path


def test_a_misspelt_column_name_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    d = _registry(tmp_path, {"columns": {"promt": "question", "response": "answer"}})
    with pytest.raises(DataFormatError, match=r"'columns.promt' is not a name tunesmith reads; did you mean 'prompt'"):
        load_examples("toy", d)


def test_unsupported_columns_and_hub_keys_are_said_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _registry(tmp_path, {"columns": {"prompt": "question", "response": "answer", "tools": "tools"},
                             "split": "validation", "subset": "zh"})
    for _ in range(2):
        examples = load_examples("toy", d)
    assert examples[0].response == "4"
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert out.count("'columns.tools' ('tools') is ignored") == 1, out
    assert out.count("'split: validation' is ignored") == 1 and out.count("'subset: zh' is ignored") == 1


def test_split_train_is_what_tunesmith_does_and_says_nothing(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    load_examples("toy", _registry(tmp_path, {"columns": {"prompt": "question", "response": "answer"},
                                              "split": "train"}))
    assert "ignored" not in capsys.readouterr().out


def test_pt_packing_false_keeps_one_document_per_row() -> None:
    docs = [[1, 2, 3], [4, 5, 6, 7, 8], [9, 10]]
    packed = chunk_text(docs, 4)
    assert [r["input_ids"] for r in packed] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    alone = chunk_text(docs, 4, pack=False)
    assert [r["input_ids"] for r in alone] == [[1, 2, 3], [4, 5, 6, 7], [9, 10]], "a 1-token tail is not a row"
    assert all(r["position_ids"][0] == 0 for r in alone[:2]) and alone[1]["labels"][0] == -100
