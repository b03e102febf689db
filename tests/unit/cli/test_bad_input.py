"""The bad-input matrix (README "What bad input looks like"): every case is one located error block,
exit code 2, no traceback, and no output folder.

Each case builds its files in a fresh folder, runs ``tunesmith train`` through the real entry point
(``main()``, in-process so the suite stays fast), and checks the block names the file with its line
or the key, says how to fix it, and that ``output_dir`` was never created.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tunesmith.cli import main as cli_main
from tunesmith.config.load import build_config, load_config
from tunesmith.config.schema import field_index
from tunesmith.utils.errors import ConfigError

GOOD = [{"instruction": f"Question {i}?", "output": f"answer {i}"} for i in range(6)]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """Run the CLI's entry point in-process; returns (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["tunesmith", *argv])
    monkeypatch.delenv("TUNESMITH_DEBUG", raising=False)
    from tunesmith.utils.console import err_console

    monkeypatch.setattr(err_console, "width", 1000)  # one line per message: no wrapping inside the panel
    with pytest.raises(SystemExit) as exc:
        cli_main.main()
    return int(exc.value.code or 0), capsys.readouterr().err


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _registry(d: Path, entries: dict) -> None:
    (d / "dataset_info.json").write_text(json.dumps(entries, indent=2))


# Each case: (setup(data_dir) -> dataset name, extra overrides, text the block must contain).
def _not_utf8_json(d: Path) -> str:
    (d / "gbk.json").write_bytes(json.dumps(GOOD[:2], ensure_ascii=False, indent=1).encode()
                                 + b"\n" + "[{\"instruction\": \"数学\"}]".encode("gbk"))
    return "gbk.json"


def _not_utf8_jsonl(d: Path) -> str:
    (d / "gbk.jsonl").write_bytes(_jsonl(GOOD[:3]).encode() + '{"instruction": "数学", "output": "是"}\n'.encode("gbk"))
    return "gbk.jsonl"


def _not_utf8_csv(d: Path) -> str:
    (d / "gbk.csv").write_bytes(b"instruction,output\nq,a\n" + "数学,是\n".encode("gbk"))
    return "gbk.csv"


def _not_utf8_txt(d: Path) -> str:
    (d / "latin1.txt").write_bytes("first document\n\nsecond doc\nwith caf\u00e9\n".encode("latin-1"))
    return "latin1.txt"


def _empty_file(d: Path) -> str:
    (d / "empty.jsonl").write_text("")
    return "empty.jsonl"


def _empty_list(d: Path) -> str:
    (d / "empty.json").write_text("[]")
    return "empty.json"


def _all_duplicates(d: Path) -> str:
    (d / "dup.jsonl").write_text(_jsonl([GOOD[0]] * 5))
    return "dup.jsonl"


def _registry_duplicate_key(d: Path) -> str:
    (d / "a.json").write_text(json.dumps(GOOD))
    (d / "dataset_info.json").write_text('{\n  "mine": {"file_name": "a.json"},\n'
                                         '  "mine": {"file_name": "b.json"}\n}\n')
    return "mine"


def _registry_not_utf8(d: Path) -> str:
    (d / "dataset_info.json").write_bytes('{"数学": {"file_name": "a.json"}}'.encode("gbk"))
    return "数学"


def _registry_outside(d: Path) -> str:
    (d.parent / "secret.json").write_text(json.dumps(GOOD))
    _registry(d, {"mine": {"file_name": "../secret.json"}})
    return "mine"


def _registry_absolute(d: Path) -> str:
    _registry(d, {"mine": {"file_name": "/etc/passwd"}})
    return "mine"


def _registry_wrong_type(d: Path) -> str:
    _registry(d, {"mine": {"file_name": 5}})
    return "mine"


def _huge_record(d: Path) -> str:
    big = {"instruction": "Summarize.", "output": "x" * (50 * 1024 * 1024)}
    (d / "huge.jsonl").write_text(_jsonl(GOOD[:2]) + json.dumps(big) + "\n")
    return "huge.jsonl"


def _csv_extra_field(d: Path) -> str:
    (d / "bad.csv").write_text('instruction,output\n"a, quoted",b\n"multi\nline",c\nq,a,surplus\n')
    return "bad.csv"


def _csv_unclosed_quote(d: Path) -> str:
    (d / "bad.csv").write_text('instruction,output\nq,a\n"never closed,b\nq2,a2\n')
    return "bad.csv"


def _parquet_wrong_types(d: Path) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"instruction": ["a", "b", "c"], "output": [[1, 2], [3], [4]]}), d / "t.parquet")
    return "t.parquet"


def _parquet_binary(d: Path) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"instruction": [b"a", b"b"], "output": ["x", "y"]}), d / "t.parquet")
    return "t.parquet"


def _record_wrong_type(d: Path) -> str:
    (d / "t.jsonl").write_text(_jsonl(GOOD[:2]) + json.dumps({"instruction": {"nested": 1}, "output": "a"}) + "\n")
    return "t.jsonl"


CASES: dict[str, tuple[Callable[[Path], str], list[str]]] = {
    "data not UTF-8 (json)": (_not_utf8_json, ["gbk.json:11:19:", "not UTF-8", "iconv"]),
    "data not UTF-8 (jsonl)": (_not_utf8_jsonl, ["gbk.jsonl:4:", "not UTF-8"]),
    "data not UTF-8 (csv)": (_not_utf8_csv, ["gbk.csv:3:", "not UTF-8"]),
    "data not UTF-8 (txt)": (_not_utf8_txt, ["latin1.txt:4:", "not UTF-8"]),
    "empty file": (_empty_file, ["empty.jsonl", "has no records", "How to fix"]),
    "empty list": (_empty_list, ["empty.json", "has no records"]),
    "all duplicates": (_all_duplicates, ["all 5 examples are the same", "dup.jsonl:1", "dedupe"]),
    "dataset_info.json duplicate key": (_registry_duplicate_key, ["dataset_info.json:3", "'mine' appears twice"]),
    "dataset_info.json not UTF-8": (_registry_not_utf8, ["dataset_info.json:1:", "not UTF-8"]),
    "file_name outside dataset_dir": (_registry_outside, ["'../secret.json' points outside", "move the file"]),
    "file_name absolute": (_registry_absolute, ["'/etc/passwd' points outside"]),
    "file_name wrong type": (_registry_wrong_type, ["'file_name' must be a str, got int"]),
    "50 MB record": (_huge_record, ["huge.jsonl:3", "one record is 52 MB", "split it"]),
    "CSV row with an extra field": (_csv_extra_field, ["bad.csv:5", "3 fields but the header has 2", "quote"]),
    "CSV unclosed quote": (_csv_unclosed_quote, ["bad.csv:3", "malformed CSV"]),
    "Parquet list column": (_parquet_wrong_types, ["t.parquet:1", "field 'output' must be a string, got list"]),
    "Parquet bytes column": (_parquet_binary, ["t.parquet", "instruction (binary) hold bytes"]),
    "record field of the wrong type": (_record_wrong_type, ["t.jsonl:3", "'instruction' must be a string"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_is_one_located_block_and_writes_nothing(case: str, tmp_path: Path, tiny_model_dir: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    setup, expected = CASES[case]
    data = tmp_path / "data"
    data.mkdir()
    name = setup(data)
    out = tmp_path / "run"
    code, err = _run(["train", f"model_name_or_path={tiny_model_dir}", f"dataset_dir={data}", f"dataset={name}",
                      f"output_dir={out}", "template=gemma"], capsys, monkeypatch)
    flat = " ".join(err.split())  # the block wraps long lines
    assert code == 2, err
    assert "Data error" in err and "Traceback" not in err
    for text in expected:
        assert " ".join(text.split()) in flat, f"{text!r} not in:\n{err}"
    assert not out.exists()


YAML_CASES = {
    "config not UTF-8": ("dataset: toy\n# 注释\n".encode("gbk"), ["line 2", "not UTF-8", "iconv"]),
    "config duplicate key": (b"dataset: toy\nlearning_rate: 1e-4\nlearning_rate: 1e-3\n",
                             ["repeated key at line 3", "'learning_rate' is given twice (lines 2 and 3)"]),
    "lora_rank 1e9": (b"dataset: toy\nlora_rank: 1000000000\n", ["'lora_rank'", "less than or equal to 4096",
                                                                  "LoRA rank r"]),
    "learning_rate .nan": (b"dataset: toy\nlearning_rate: .nan\n", ["'learning_rate'", "finite number"]),
    "learning_rate .inf": (b"dataset: toy\nlearning_rate: .inf\n", ["'learning_rate'", "finite number"]),
    "wrong type": (b"dataset: toy\nnum_train_epochs: [1, 2]\nbf16: maybe\n",
                   ["2 problem(s)", "'num_train_epochs'", "'bf16'"]),
    "YAML syntax": (b"dataset: toy\nlearning_rate: [1e-4\n", ["YAML syntax error at line 3"]),
}


@pytest.mark.parametrize("case", list(YAML_CASES))
def test_bad_config_is_one_located_block_and_writes_nothing(case: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    content, expected = YAML_CASES[case]
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    out = tmp_path / "run"
    code, err = _run(["train", str(path), f"output_dir={out}"], capsys, monkeypatch)
    flat = " ".join(err.split())
    assert code == 2, err
    assert "Config error" in err and "c.yaml" in flat and "Traceback" not in err
    for text in expected:
        assert text in flat, f"{text!r} not in:\n{err}"
    assert not out.exists()


def test_a_bom_is_read_as_utf8(tmp_path: Path) -> None:
    """A byte-order mark (Windows Notepad) is not an error: config, registry and data read as usual."""
    bom = b"\xef\xbb\xbf"
    d = tmp_path / "data"
    d.mkdir()
    (d / "t.jsonl").write_bytes(bom + _jsonl(GOOD).encode())
    (d / "t.csv").write_bytes(bom + b"instruction,output\nq,a\nq2,a2\n")
    (d / "dataset_info.json").write_bytes(bom + json.dumps({"j": {"file_name": "t.jsonl"},
                                                            "c": {"file_name": "t.csv"}}).encode())
    (tmp_path / "c.yaml").write_bytes(bom + f"dataset: j,c\ndataset_dir: {d}\nlora_rank: 4\n".encode())
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.finetune.lora_rank == 4 and cfg.data.dataset == ["j", "c"]
    from tunesmith.data.registry import load_examples

    assert len(load_examples("j", d)) == 6
    assert [e.messages[0].content for e in load_examples("c", d)] == ["q", "q2"]  # no '\ufeffinstruction' column


def _wrong_value(key: str) -> object:
    return [[1, 2]]  # a nested list is the wrong type for every key (str, int, float, bool, list[str], Literal)


@pytest.mark.parametrize("key", sorted(field_index()))
def test_every_key_given_the_wrong_type_is_named(key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build_config({"dataset": "x", key: _wrong_value(key)}, source="c.yaml")
    assert f"'{key}'" in str(exc.value) and "c.yaml" in str(exc.value)


def test_non_utf8_config_from_a_real_process_is_a_block_with_exit_code_2(tmp_path: Path) -> None:
    """The exit code and the absence of a traceback, as a shell sees them."""
    path = tmp_path / "c.yaml"
    path.write_bytes("dataset: toy\n# 中文注释\n".encode("gbk"))
    proc = subprocess.run([sys.executable, "-m", "tunesmith.cli.main", "train", str(path),
                           f"output_dir={tmp_path / 'run'}"], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "not UTF-8" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()
