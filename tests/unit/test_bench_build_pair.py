"""Unit tests for benchmarks/build_pair.py (pairing a rebuild with the build it repeats)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.build_pair import compare, free_text
from finece_guard.data.choice_commit import COMMIT_PREFIX


def _row(key: str, task: str, finals: list[tuple[str, float]]) -> dict[str, Any]:
    states = [{"kind": "question", "answer": None, "label": 0.5}]
    states += [{"kind": "final", "answer": a, "label": y} for a, y in finals]
    return {"key": key, "task": task, "states": states}


def test_free_text_strips_only_a_committed_letter() -> None:
    assert free_text("I think so" + COMMIT_PREFIX + "B") == "I think so"
    assert free_text("Answer: B") == "Answer: B"
    assert free_text("x" + COMMIT_PREFIX + "B) because it is") == "x" + COMMIT_PREFIX + "B) because it is"


def test_compare_counts_commits_labels_and_identical_samples() -> None:
    old = [_row("q1", "arc", [("hmm", 0.0), ("Answer: A", 1.0)]), _row("q2", "arc", [("no", 0.0), ("n", 0.0)])]
    new = [
        _row("q1", "arc", [("hmm" + COMMIT_PREFIX + "A", 1.0), ("Answer: A", 1.0)]),
        _row("q2", "arc", [("other", 0.0), ("n" + COMMIT_PREFIX + "C", 0.0)]),
        _row("q3", "arc", [("unpaired", 1.0)]),
    ]
    r = compare(old, new)["arc"]
    assert (r["questions"], r["paired"]) == (3, 2)
    assert r["committed_share"] == pytest.approx(2 / 4)
    assert (r["accuracy_old"], r["accuracy_new"]) == (pytest.approx(1 / 4), pytest.approx(2 / 4))
    assert (r["all_wrong_old"], r["all_wrong_new"]) == (0.5, 0.5)
    assert r["same_text_share"] == pytest.approx(3 / 4)
    assert compare(old, new)["pooled"]["paired"] == 2
