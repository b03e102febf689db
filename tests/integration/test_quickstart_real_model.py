"""The quickstart on the real bundled Gemma 3 270M: tuned must beat base on held-out data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunesmith.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.real_model
def test_quickstart_beats_base(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    result = CliRunner().invoke(app, ["train", str(ROOT / "examples" / "quickstart.yaml"), "num_train_epochs=3",
                                      f"output_dir={out}", "eval_steps=1000", "save_steps=1000"],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    cmp = summary["base_vs_tuned"]
    assert cmp["tuned"]["exact_match"] >= cmp["base"]["exact_match"] + 50, cmp
    gen = json.loads((out / "generation_config.json").read_text())
    assert 106 in gen["eos_token_id"] and 1 in gen["eos_token_id"]
