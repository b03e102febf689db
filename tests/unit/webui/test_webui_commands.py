"""Running other tunesmith commands for the UI: availability, streamed output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.webui import commands


def test_commands_that_exist_and_do_not() -> None:
    assert commands.available("data")
    assert not commands.available("no-such-command")


def test_stream_shows_output_and_exit_code(tmp_path: Path) -> None:
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"instruction": f"q{i}", "output": f"a{i}"} for i in range(10)]))
    done = commands.run(["data", "split", str(data), "--ratios", "8,2"], cwd=tmp_path)
    assert done.returncode == 0, done.output
    assert "d.train.json" in done.output and "\x1b[" not in done.output
    assert done.command.startswith("tunesmith data split")
    assert (tmp_path / "d.val.json").exists()
    failed = commands.run(["data", "split", str(tmp_path / "missing.json")], cwd=tmp_path)
    assert failed.returncode != 0 and "missing.json" in failed.output
