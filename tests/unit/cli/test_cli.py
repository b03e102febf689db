"""The CLI end to end on the tiny model: help, config errors, data check/split, train."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from tunesmith.cli.main import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[3]


HEAVY = ("torch", "transformers", "peft", "trl", "datasets", "gradio", "fastapi")

# Runs `tunesmith ARGS` in a fresh interpreter and reports which heavy libraries got imported.
_IMPORTS_PROBE = """
import json, sys
args, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["tunesmith", *args]
try:
    from tunesmith.cli.main import main
    main()
except SystemExit:
    pass
print("HEAVY=" + json.dumps(sorted(m for m in sys.modules if m in heavy)), file=sys.stderr)
"""


def _heavy_imports(*args: str) -> tuple[list[str], str, str]:
    proc = subprocess.run([sys.executable, "-c", _IMPORTS_PROBE, json.dumps(args), json.dumps(HEAVY)],
                          capture_output=True, text=True, timeout=120)
    heavy = json.loads(proc.stderr.rsplit("HEAVY=", 1)[1])
    return heavy, proc.stdout, proc.stderr


def test_help_and_config_errors_import_no_heavy_library(tmp_path: Path) -> None:
    # Start-up time is import time (llamafactory-cli spends 22-28 s importing before it reads a config);
    # benchmarks/cli_startup.py measures the seconds.
    heavy, out, _ = _heavy_imports("--help")
    assert heavy == [], f"tunesmith --help imported {heavy}"
    for cmd in ("train", "chat", "data", "serve", "webui"):
        assert cmd in out
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dataset: x\nlearnin_rate: 1e-4\n")
    heavy, _, err = _heavy_imports("train", str(cfg))
    assert "did you mean 'learning_rate'" in err
    assert heavy == [], f"a config typo is reported only after importing {heavy}"


def _commands(group: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every runnable command of the CLI (``data split``, ``bench generate``, ...), read from the app itself."""
    subs = getattr(group, "commands", None)
    if subs is None:
        return [path]
    return [p for name, sub in subs.items() for p in _commands(sub, (*path, name))]


COMMANDS = _commands(typer.main.get_command(app))


def test_the_command_list_is_the_whole_cli() -> None:
    assert len(COMMANDS) >= 18 and ("data", "split") in COMMANDS and ("bench", "generate") in COMMANDS


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_examples(cmd: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*cmd, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output, f"'tunesmith {' '.join(cmd)} --help' has no Examples: section"
    examples = result.output.split("Examples:", 1)[1]
    assert f"tunesmith {' '.join(cmd)}" in examples, f"no example runs 'tunesmith {' '.join(cmd)}'"


def test_config_error_is_one_clear_block_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dataset: x\nlearnin_rate: 1e-4\n")
    proc = subprocess.run([sys.executable, "-m", "tunesmith.cli.main", "train", str(cfg)], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert "did you mean 'learning_rate'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_data_split_is_deterministic(tmp_path: Path, alpaca_rows: list[dict]) -> None:
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in alpaca_rows * 5))
    for _ in range(2):
        result = runner.invoke(app, ["data", "split", str(src), "--ratios", "7,1.5,1.5"])
        assert result.exit_code == 0, result.output
    parts = [tmp_path / f"d.{name}.jsonl" for name in ("train", "val", "test")]
    counts = [len(p.read_text().splitlines()) for p in parts]
    assert counts == [28, 6, 6]
    first = parts[0].read_text()
    runner.invoke(app, ["data", "split", str(src), "--ratios", "7,1.5,1.5"])
    assert parts[0].read_text() == first


def test_data_split_refuses_bad_data_and_writes_nothing(tmp_path: Path, cli) -> None:  # noqa: ANN001
    src = tmp_path / "bad.jsonl"
    src.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": ""}\n')
    result = cli("data", "split", str(src))
    assert result.code == 2 and "Traceback" not in result.err
    assert "bad.jsonl:2: field 'output' is empty" in result.err_text, result.err
    assert not list(tmp_path.glob("bad.*.jsonl"))


def test_data_check_reports_stats_and_marks_trained_tokens(tiny_model_dir: Path, dataset_dir: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["data", "check", "toy_train", "toy_val", "--dataset-dir", str(dataset_dir),
                                 "--model", str(tiny_model_dir), "--template", "gemma", "--cutoff-len", "20",
                                 "--json", str(out)], terminal_width=200)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    train = report["splits"][0]
    assert train["examples"] == 16 and train["duplicates"] == 8
    assert train["over_cutoff_len"] > 0
    assert 0 < train["loss_token_share"] < 0.5
    assert "⟦" in result.output and "<end_of_turn>⟧" in result.output


# Library noise the first training used to print (issue 14): silenced by utils/quiet.py.
NOISE = ("torchao/_C_", "is_gradient_checkpointing", "register_constant()")


def test_train_cli_end_to_end(tiny_train_overrides: dict) -> None:
    # A real `tunesmith train` process, as a user starts it: a fresh interpreter imports peft, the
    # Trainer (and through it torchao when installed), so their start-up noise would show here.
    args = ["train"] + [f"{k}={v}" for k, v in {**tiny_train_overrides, "max_steps": 3,
                                                 "report_summary": True}.items()]
    proc = subprocess.run([sys.executable, "-m", "tunesmith.cli.main", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = Path(tiny_train_overrides["output_dir"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["steps"] == 3
    assert set(summary["base_vs_tuned"]["tuned"]) >= {"exact_match", "rouge-l"}
    assert "base vs tuned" in proc.stdout
    noise = [line for line in (proc.stdout + proc.stderr).splitlines() if any(n in line for n in NOISE)]
    assert not noise, noise


def test_data_stats_command_counts_what_is_there(tiny_model_dir: Path, tiny_tokenizer, dataset_dir: Path,  # noqa: ANN001
                                                 alpaca_rows: list[dict], tmp_path: Path, cli) -> None:  # noqa: ANN001
    out = tmp_path / "stats.json"
    result = cli("data", "stats", "toy_train", "toy_val", "--dataset-dir", str(dataset_dir), "--model",
                 str(tiny_model_dir), "--template", "gemma", "--cutoff-len", "20", "--json", str(out))
    assert result.code == 0, result.err
    assert "toy_train" in result.out and "toy_val" in result.out
    train, val = json.loads(out.read_text())["datasets"]
    # toy_train is the 8 rows twice; toy_val is the first 4; half the rows are Chinese
    assert (train["dataset"], train["examples"], train["exact_duplicates"], train["near_duplicates"]) == \
        ("toy_train", 16, 8, 0)
    assert (val["dataset"], val["examples"], val["exact_duplicates"]) == ("toy_val", 4, 0)
    assert train["chinese_share"] == val["chinese_share"] == 0.5
    assert train["user_turns_mean"] == 1 and train["system_share"] == 0
    assert train["distinct_phrasings"] == 8 and val["distinct_phrasings"] == 4
    answer_lengths = sorted(len(tiny_tokenizer.encode(r["output"], add_special_tokens=False)) for r in alpaca_rows)
    assert train["answer_tokens_max"] == answer_lengths[-1]
    assert train["tokens_max"] > train["answer_tokens_max"] and 0 < train["loss_token_share"] < 1
    assert 0 < train["over_cutoff"] <= 16 and train["over_cutoff"] % 2 == 0, "each row counts twice"
    roomy = cli("data", "stats", "toy_val", "--dataset-dir", str(dataset_dir), "--model", str(tiny_model_dir),
                "--template", "gemma", "--cutoff-len", "1024", "--json", str(out))
    assert roomy.code == 0 and json.loads(out.read_text())["datasets"][0]["over_cutoff"] == 0


def test_bench_generate_command_writes_its_figures(tiny_model_dir: Path, tmp_path: Path, cli) -> None:  # noqa: ANN001
    out = tmp_path / "generate.json"
    result = cli("bench", "generate", "--model", str(tiny_model_dir), "--prompts", "4", "--max-new-tokens", "4",
                 "--batch-size", "2", "--output", str(out))
    assert result.code == 0, result.err
    figures = json.loads(out.read_text())
    assert (figures["prompts"], figures["max_new_tokens"], figures["batch_size"]) == (4, 4, 2)
    assert figures["baseline_tokens_per_s"] > 0 and figures["tokens_per_s"] > 0
    assert figures["speedup"] == pytest.approx(figures["tokens_per_s"] / figures["baseline_tokens_per_s"], rel=0.02)
    assert "baseline" in result.out and "speed-up" in result.out
