"""Atomic writes never delete what tunesmith did not write, and never leave half a file or folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.utils.errors import TunesmithError
from tunesmith.utils.io import atomic_dir, copy_new, replace_dir


def test_copy_new_never_overwrites_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    src = tmp_path / "up" / "data.json"
    src.parent.mkdir()
    src.write_text("new")
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "data.json").write_text("the user's file")
    (dest / "data-1.json").write_text("another")
    got = copy_new(src, dest)
    assert got.name == "data-2.json" and got.read_text() == "new"
    assert (dest / "data.json").read_text() == "the user's file" and (dest / "data-1.json").read_text() == "another"
    assert sorted(p.name for p in dest.iterdir()) == ["data-1.json", "data-2.json", "data.json"]


def test_atomic_dir_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    target = tmp_path / "cache"
    target.mkdir()
    (target / "mine.txt").write_text("keep")
    with pytest.raises(TunesmithError, match="did not write"), atomic_dir(target, marker="ours.json") as tmp:
        (tmp / "x").write_text("never used")
    assert [p.name for p in target.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_atomic_dir_replaces_its_own_folder_only_when_the_block_succeeds(tmp_path: Path) -> None:
    target = tmp_path / "cache"
    target.mkdir()
    (target / "ours.json").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target, marker="ours.json") as tmp:
        (tmp / "ours.json").write_text("half")
        raise RuntimeError("stopped")
    assert (target / "ours.json").read_text() == "old"
    with atomic_dir(target, marker="ours.json") as tmp:
        (tmp / "ours.json").write_text("new")
    assert (target / "ours.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"], "no temporary or set-aside folder left"


def test_replace_dir_puts_the_old_folder_back_if_the_move_fails(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    (target / "a").write_text("old")
    with pytest.raises(FileNotFoundError):
        replace_dir(tmp_path / "missing", target)
    assert (target / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
