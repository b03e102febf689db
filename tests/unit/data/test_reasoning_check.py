"""Reasoning data end to end through `data check`: read, masked, shown; cutoff_len vs the model's positions."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tunesmith.cli.main import app
from tunesmith.data.checks import position_warning
from tunesmith.data.formats import convert_records
from tunesmith.data.readers import read_records

runner = CliRunner()

ROWS = [
    {"messages": [{"role": "user", "content": "What is 2 + 3?"},
                  {"role": "assistant", "content": "5", "reasoning_content": "two plus three is five"}]},
    {"messages": [{"role": "user", "content": "What is 4 + 4?"},
                  {"role": "assistant", "content": "8", "reasoning": "four and four make eight"}]},
    {"messages": [{"role": "user", "content": "Name the subject: 水的化学式"},
                  {"role": "assistant", "content": "<think>\nwater is chemistry\n</think>\n\nchemistry"}]},
    {"messages": [{"role": "user", "content": "Which subject is 2 + 2?"}, {"role": "assistant", "content": "math"}]},
]


def _file(tmp_path: Path) -> Path:
    f = tmp_path / "reason.jsonl"
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS), encoding="utf-8")
    return f


def test_reasoning_fields_are_read(tmp_path: Path) -> None:
    examples = convert_records(read_records(_file(tmp_path)))
    assert [e.messages[-1].reasoning for e in examples] == [
        "two plus three is five", "four and four make eight", None, None]
    alpaca = tmp_path / "a.json"
    alpaca.write_text(json.dumps([{"instruction": "4 + 4?", "output": "8", "reasoning": "four and four"}]))
    (ex,) = convert_records(read_records(alpaca))
    assert ex.messages[-1].reasoning == "four and four"


def test_data_check_shows_reasoning_trained_in_the_reply(tiny_model_dir: Path, tmp_path: Path) -> None:
    f = _file(tmp_path)
    out = tmp_path / "r.json"
    for show, want in ((0, "⟦<think>\ntwo plus three is five\n</think>\n\n5<|im_end|>⟧"),
                       (3, "⟦<think>\n\n</think>\n\nmath<|im_end|>⟧")):
        result = runner.invoke(app, ["data", "check", str(f), "--model", str(tiny_model_dir), "--template", "qwen3",
                                     "--show", str(show), "--json", str(out)], terminal_width=200)
        assert result.exit_code == 0, result.output
        assert want in result.output, result.output
        assert "⟦What is" not in result.output
    assert "3 of 4 examples carry reasoning" in result.output
    assert json.loads(out.read_text())["splits"][0]["with_reasoning"] == 3
    # thinking off: the empty block moves into the prompt, only the answer is trained
    result = runner.invoke(app, ["data", "check", str(f), "--model", str(tiny_model_dir), "--template", "qwen3",
                                 "--show", "3", "--no-enable-thinking"], terminal_width=200)
    assert "</think>\n\n⟦math<|im_end|>⟧" in result.output, result.output
    # a template without a thinking format keeps the reasoning inline and says so
    result = runner.invoke(app, ["data", "check", str(f), "--model", str(tiny_model_dir), "--template", "gemma"],
                           terminal_width=200)
    assert "no thinking format" in result.output
    assert "⟦<think>\ntwo plus three is five\n</think>\n\n5<end_of_turn>⟧" in result.output


def test_cutoff_len_beyond_the_models_positions_is_flagged(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "check", str(_file(tmp_path)), "--model", str(tiny_model_dir),
                                 "--cutoff-len", "4096"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "exceeds the model's 1024 positions" in result.output and "rope_scaling" in result.output
    assert position_warning(1024, {"max_position_embeddings": 1024}) is None
    assert position_warning(8192, {"max_position_embeddings": 2048, "rope_scaling": {"rope_type": "linear",
                                                                                       "factor": 4.0}}) is None
    assert position_warning(4096, {"max_position_embeddings": 2048}, rope_scaling="linear") is None
