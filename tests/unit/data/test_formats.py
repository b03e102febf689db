"""Every data format, its detection, registry mapping and its error cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.data.formats import convert_records, detect_format
from tunesmith.data.readers import read_records
from tunesmith.data.records import KTOExample, PreferenceExample, SFTExample, TextExample
from tunesmith.data.registry import load_examples, resolve_dataset
from tunesmith.utils.errors import DataFormatError


def _write(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    elif path.suffix == ".csv":
        import csv

        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


ALPACA = [{"instruction": "判断学科", "input": "1+1=?", "output": "数学", "system": "你是老师"},
          {"instruction": "Name the subject", "input": "", "output": "history",
           "history": [["hi", "hello"]]}]


@pytest.mark.parametrize("ext", [".json", ".jsonl", ".csv", ".parquet"])
def test_alpaca_in_every_file_type(tmp_path: Path, ext: str) -> None:
    rows = [{k: v for k, v in r.items() if k != "history"} for r in ALPACA]
    examples = load_examples(str(_write(tmp_path / f"d{ext}", rows)), tmp_path)
    assert all(isinstance(e, SFTExample) for e in examples)
    first = examples[0]
    assert first.system == "你是老师"
    assert first.messages[0].content == "判断学科\n1+1=?" and first.response == "数学"
    assert examples[1].messages[0].content == "Name the subject"


def test_alpaca_history_becomes_turns(tmp_path: Path) -> None:
    ex = load_examples(str(_write(tmp_path / "d.json", ALPACA)), tmp_path)[1]
    assert [m.role for m in ex.messages] == ["user", "assistant", "user", "assistant"]


def test_sharegpt_and_openai_with_system(tmp_path: Path) -> None:
    share = [{"conversations": [{"from": "system", "value": "sys"}, {"from": "human", "value": "q1"},
                                {"from": "gpt", "value": "a1"}, {"from": "human", "value": "q2"},
                                {"from": "gpt", "value": "a2"}]}]
    openai = [{"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"},
                            {"role": "assistant", "content": "a"}]}]
    s = load_examples(str(_write(tmp_path / "s.jsonl", share)), tmp_path)[0]
    o = load_examples(str(_write(tmp_path / "o.jsonl", openai)), tmp_path)[0]
    assert s.system == "sys" and len(s.messages) == 4 and s.response == "a2"
    assert o.system == "sys" and o.response == "a"


def test_preference_shapes(tmp_path: Path) -> None:
    notes = [{"question": "地球为什么会自转？", "positive_answer": "角动量守恒。", "negative_answer": "因为公转。"}]
    pcr = [{"prompt": "q", "chosen": "good", "rejected": "bad"}]
    share = [{"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "good"},
              "rejected": {"from": "gpt", "value": "bad"}}]
    for name, rows in (("n.json", notes), ("p.json", pcr), ("s.json", share)):
        ex = load_examples(str(_write(tmp_path / name, rows)), tmp_path)[0]
        assert isinstance(ex, PreferenceExample), name
        assert ex.chosen != ex.rejected


def test_kto_and_text(tmp_path: Path) -> None:
    kto = [{"instruction": "如何学英语？", "output": "每天阅读。", "kto_tag": True},
           {"instruction": "q", "output": "bad", "kto_tag": "false"}]
    ex = load_examples(str(_write(tmp_path / "k.json", kto)), tmp_path)
    assert isinstance(ex[0], KTOExample) and ex[0].label is True and ex[1].label is False
    (tmp_path / "t.txt").write_text("doc one line\nmore\n\ndoc two\n", encoding="utf-8")
    texts = load_examples(str(tmp_path / "t.txt"), tmp_path)
    assert [type(t) for t in texts] == [TextExample, TextExample] and texts[0].origin.line == 1
    assert texts[1].origin.line == 4


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"instruction": "q", "output": ""}], "field 'output' is empty"),
        ([{"instruction": "q"}], "missing field 'output'"),
        ([{"instruction": "q", "output": ["x"]}], "must be a string"),
        ([{"prompt": "q", "chosen": "same", "rejected": "same"}], "identical"),
        ([{"instruction": "q", "output": "a", "kto_tag": "maybe"}], "must be true or false"),
        ([{"instruction": "q", "output": "a", "kto_tag": None}], "must be true or false"),
        ([{"foo": "bar"}], "cannot tell the format"),
        ([{"conversations": [{"from": "gpt", "value": "a"}]}], "'user' was expected"),
        ([{"conversations": [{"from": "alien", "value": "a"}]}], "unknown role"),
    ],
)
def test_bad_records_name_file_line_and_field(tmp_path: Path, rows: list[dict], message: str) -> None:
    good = {"instruction": "ok", "output": "fine"}
    if "chosen" in rows[0]:
        good = {"prompt": "ok", "chosen": "good", "rejected": "bad"}
    elif "kto_tag" in rows[0]:
        good = {"instruction": "ok", "output": "fine", "kto_tag": True}
    elif "conversations" in rows[0]:
        good = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    path = _write(tmp_path / "bad.jsonl", [good] + rows)
    with pytest.raises(DataFormatError, match=message) as info:
        load_examples(str(path), tmp_path)
    assert f"{path}:2" in str(info.value)


def test_malformed_json_line_and_json_array_lines(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": \n')
    with pytest.raises(DataFormatError, match=r"x.jsonl:2: malformed JSON"):
        read_records(p)
    arr = tmp_path / "y.json"
    arr.write_text('[\n {"instruction": "a", "output": "b"},\n\n {"instruction": "c", "output": ""}\n]\n')
    with pytest.raises(DataFormatError, match=r"y.json:4: field 'output' is empty"):
        load_examples(str(arr), tmp_path)
    bad = tmp_path / "z.json"
    bad.write_text('[{"a": 1},\n {"a": 2,}]')
    with pytest.raises(DataFormatError, match=r"z.json:2:"):
        read_records(bad)


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "d.xml").write_text("<x/>")
    with pytest.raises(DataFormatError, match="unsupported file type"):
        read_records(tmp_path / "d.xml")
    with pytest.raises(DataFormatError, match="not found"):
        read_records(tmp_path / "nope.json")


def test_registry_columns_and_tags_like_llamafactory(tmp_path: Path) -> None:
    rows = [{"dialog": [{"speaker": "me", "text": "q"}, {"speaker": "bot", "text": "a"}], "sys": "S"}]
    _write(tmp_path / "c.json", rows)
    (tmp_path / "dataset_info.json").write_text(json.dumps({"chats": {
        "file_name": "c.json", "formatting": "sharegpt", "columns": {"messages": "dialog", "system": "sys"},
        "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "me", "assistant_tag": "bot"}}}))
    ex = load_examples("chats", tmp_path)[0]
    assert ex.system == "S" and ex.response == "a"
    alp = [{"q": "question", "a": "answer"}]
    _write(tmp_path / "a.json", alp)
    (tmp_path / "dataset_info.json").write_text(json.dumps({"mine": {
        "file_name": "a.json", "columns": {"prompt": "q", "response": "a"}}}))
    assert load_examples("mine", tmp_path)[0].response == "answer"


def test_registry_unknown_name_suggests(tmp_path: Path) -> None:
    (tmp_path / "dataset_info.json").write_text(json.dumps({"subjects_train": {"file_name": "x.json"}}))
    with pytest.raises(DataFormatError, match="subjects_train"):
        resolve_dataset("subject_train", tmp_path)


def test_detect_format() -> None:
    assert detect_format({"instruction": "a", "output": "b"}) == "alpaca"
    assert detect_format({"messages": []}) == "openai"
    assert detect_format({"conversations": []}) == "sharegpt"
    assert detect_format({"text": "x"}) == "text"
    assert detect_format({"instruction": "a", "output": "b", "kto_tag": True}) == "kto"


def test_mixed_formats_in_one_file_fail(tmp_path: Path) -> None:
    records = read_records(_write(tmp_path / "m.jsonl", [{"instruction": "a", "output": "b"}, {"text": "t"}]))
    with pytest.raises(DataFormatError, match="earlier records are 'alpaca'"):
        convert_records(records)
