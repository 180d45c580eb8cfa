"""The gating-curve arithmetic of benchmarks/gating_curve.py (accuracy at a retrieval rate, gain over random)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.gating_curve import RATES, accuracy_at, curves, gain_at_half


def _rows(signal_is_informative: bool) -> list[dict[str, object]]:
    rows = []
    for i in range(40):
        helps = i % 2 == 0  # retrieval turns a wrong answer right on half the questions
        signal = (0.1 if helps else 0.9) if signal_is_informative else 0.5 + 0.01 * (i % 7)
        rows.append({"plain_correct": not helps and i % 4 == 1, "passage_correct": True, "gate": signal})
    return rows


def test_accuracy_at_retrieves_the_lowest_signals() -> None:
    plain = np.array([0.0, 1.0, 0.0, 1.0])
    passage = np.array([1.0, 1.0, 1.0, 0.0])
    signal = np.array([0.1, 0.9, 0.2, 0.3])
    assert accuracy_at(signal, plain, passage, 0.0) == 0.5
    assert accuracy_at(signal, plain, passage, 0.5) == 1.0  # the two lowest (0.1, 0.2) retrieve
    assert accuracy_at(signal, plain, passage, 1.0) == 0.75


def test_an_informative_gate_matches_the_oracle_and_beats_random() -> None:
    good, flat = _rows(True), _rows(False)
    c = curves(good, ["gate"])
    assert c["gate"][RATES.index(0.5)] == pytest.approx(c["oracle"][RATES.index(0.5)])
    gain = gain_at_half(good, "gate", n_boot=200)
    assert gain[0] == pytest.approx(0.75 - 0.625) and gain[1] > 0.0  # 30/40 right vs random 0.25 + 0.5 * 0.75
    assert abs(gain_at_half(flat, "gate", n_boot=200)[0]) < 0.15
    assert c["random (expected)"][0] == pytest.approx(np.mean([r["plain_correct"] for r in good]))
    assert c["random (expected)"][-1] == 1.0


def test_from_json_reuses_the_scorer_models_of_the_earlier_file(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    import benchmarks.gating_curve as gc

    rows = [{**r, "fine_ce_question[cand]": 0.5, "fine_ce_full[cand]": r["gate"], "min_token_prob": 0.5,
             "mean_token_prob": 0.5} for r in _rows(True)]  # fmt: skip
    saved = tmp_path / "earlier.json"
    saved.write_text(json.dumps({"scorer_model": "cand", "rows": rows}))
    written: dict[str, Any] = {}
    monkeypatch.setattr(gc, "OUT", tmp_path)
    monkeypatch.setattr(gc, "finish", lambda name, result, md: written.update(result))
    base = ["--base-url", "http://127.0.0.1:9/v1", "--from-json", str(saved), "--label", "t"]
    gc.main(base)  # no --model: the file's models, not "finece"
    assert written["scorer_model"] == "cand" and "fine_ce_full[cand]" in written["curves"]
    with pytest.raises(SystemExit):
        gc.main([*base, "--model", "finece"])


def test_rescore_missing_scores_the_saved_answers_with_the_new_adapter(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:  # fmt: skip
    import benchmarks.gating_curve as gc
    from finece_guard.data.loaders import load_task
    from finece_guard.types import CheckpointKind, Score

    records = [r for r in load_task("sciq", partition="test") if r.context][:40]
    rows = [{**r, "id": rec.id, "answer": f"answer {i}", "fine_ce_question[finece]": 0.5,
             "fine_ce_full[finece]": 0.5, "min_token_prob": 0.5, "mean_token_prob": 0.5}
            for i, (r, rec) in enumerate(zip(_rows(True), records, strict=True))]  # fmt: skip
    saved = tmp_path / "earlier.json"
    saved.write_text(json.dumps({"scorer_model": "finece", "rows": rows}))
    asked: list[tuple[str, str, str | None, CheckpointKind]] = []

    class FakeScorer:  # unit test: records what it was asked, scores the answer's gate signal
        def __init__(self, base_url: str, *, model: str, **_: Any) -> None:
            self.model = model

        async def ascore(self, question: str, answer: str | None, kind: CheckpointKind) -> Score:
            asked.append((self.model, question, answer, kind))
            if answer is None:
                return Score(value=0.3, spread=0.0, mass=1.0)
            return Score(value=float(next(r["gate"] for r in rows if r["answer"] == answer)), spread=0.0, mass=1.0)

        async def aclose(self) -> None:
            pass

    written: dict[str, Any] = {}
    monkeypatch.setattr(gc, "OpenAICompatScorer", FakeScorer)
    monkeypatch.setattr(gc, "OUT", tmp_path)
    monkeypatch.setattr(gc, "finish", lambda name, result, md: written.update(result))
    base = ["--base-url", "http://127.0.0.1:9/v1", "--from-json", str(saved), "--label", "t",
            "--model", "cand,finece"]  # fmt: skip
    with pytest.raises(SystemExit):  # missing adapter without the flag: an error naming the flag
        gc.main(base)
    gc.main([*base, "--rescore-missing"])
    assert {m for m, *_ in asked} == {"cand"} and len(asked) == 2 * len(rows)  # only the missing adapter
    by_id = {r.id: r.prompt() for r in records}
    assert all(q == by_id[row["id"]] for row in rows for _, q, a, _ in asked if a == row["answer"])
    got = written["rows"]
    gain = gain_at_half(got, "fine_ce_full[cand]", n_boot=50)[0]
    assert gain == pytest.approx(gain_at_half(got, "gate", n_boot=50)[0]) and gain > 0
    assert "fine_ce_full[cand]" in written["curves"] and "fine_ce_full[finece]" in written["curves"]


def test_perfect_confidence_is_the_expected_accuracy_of_ranking_wrong_answers_first() -> None:
    from itertools import permutations

    from benchmarks.gating_curve import perfect_confidence_at

    plain = np.array([0.0, 0.0, 0.0, 1.0, 1.0])
    passage = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    for k in range(6):
        orders = [(w, r) for w in permutations([0, 1, 2]) for r in permutations([3, 4])]
        by_brute_force = np.mean(
            [np.where(np.isin(np.arange(5), (list(w) + list(r))[:k]), passage, plain).mean() for w, r in orders]
        )
        assert perfect_confidence_at(plain, passage, k / 5) == pytest.approx(by_brute_force)


def test_perfect_confidence_bounds_a_correctness_gate_and_is_reported() -> None:
    from benchmarks.gating_curve import PERFECT

    rows = [{**r, "knows": 1.0 if r["plain_correct"] else 0.0} for r in _rows(False)]
    c = curves(rows, ["knows", "gate"])
    half = RATES.index(0.5)
    assert c[PERFECT][half] == pytest.approx(c["knows"][half])  # a score that knows correctness
    assert c[PERFECT][half] >= c["gate"][half] and c[PERFECT][half] <= c["oracle"][half]
    assert gain_at_half(rows, PERFECT, n_boot=50)[0] == pytest.approx(gain_at_half(rows, "knows", n_boot=50)[0])
