"""staged_dir: a folder appears whole (replacing the old one) or not at all, and no temporary folder stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from finece_guard.staging import staged_dir


def test_a_finished_block_replaces_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "adapter"
    target.mkdir(parents=True)
    (target / "old.txt").write_text("old")
    with staged_dir(target, ".t-") as tmp:
        assert tmp.parent == target.parent and tmp != target
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["adapter"]


def test_a_failed_block_leaves_the_old_folder_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_dir(target, ".t-") as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("conversion failed")
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
