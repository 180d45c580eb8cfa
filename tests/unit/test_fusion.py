"""FineCE+ fusion: features, fit, save/load round trip, and that it uses the stream's signal."""

from __future__ import annotations

import asyncio
import json
import math
import random
from pathlib import Path

import pytest

from finece_guard.backends.fusion import FEATURES, FUSION_FILE, FusionModel, fit_fusion, state_features
from finece_guard.errors import ConfigError
from finece_guard.metrics import auroc
from finece_guard.types import Score


def test_features_follow_the_stream_prefix() -> None:
    f = state_features(0.5, [-0.1, -2.0, None, -0.5], ["a", "b", "c", "d"], final=False)
    assert len(f) == len(FEATURES)
    assert f[0] == pytest.approx(0.0)  # logit(0.5)
    assert f[1] == pytest.approx((-0.1 - 2.0 - 0.5) / 3)  # unknown logprobs are left out
    assert f[2] == -2.0 and f[4] == pytest.approx(math.log(5)) and f[6] == 0.0
    assert state_features(0.5, [], [], final=True)[1:4] == [0.0, 0.0, 0.0]
    # repetition: share of token 3-grams seen before
    assert state_features(0.5, [], list("abcabca"), final=True)[5] == pytest.approx(2 / 5)


def _synthetic(n: int, seed: int) -> tuple[list[list[float]], list[bool], list[float]]:
    """Correctness shows in the token logprobs, barely in the adapter's score."""
    rng = random.Random(seed)
    rows, labels, raw = [], [], []
    for _ in range(n):
        ok = rng.random() < 0.4
        score = min(0.99, max(0.01, 0.3 + rng.gauss(0, 0.1) + (0.02 if ok else 0.0)))
        lps = [rng.gauss(-0.3 if ok else -1.2, 0.4) for _ in range(20)]
        rows.append(state_features(score, lps, [str(i) for i in range(20)], final=True))
        labels.append(ok)
        raw.append(score)
    return rows, labels, raw


def test_fit_uses_the_stream_signal_and_round_trips(tmp_path: Path) -> None:
    rows, labels, _ = _synthetic(300, 0)
    model = fit_fusion(rows, labels, meta={"fit_on": "synthetic"})
    test_rows, test_labels, test_raw = _synthetic(300, 1)
    fused = [model.predict(r) for r in test_rows]
    assert auroc(fused, test_labels) > auroc(test_raw, test_labels) + 0.15
    assert all(0.0 < p < 1.0 for p in fused)
    path = model.save(tmp_path)
    assert path.name == FUSION_FILE
    again = FusionModel.load(tmp_path)
    assert [again.predict(r) for r in test_rows] == fused
    assert again.meta["fit_on"] == "synthetic" and again.meta["n"] == 300


def test_fit_and_load_refuse_what_they_cannot_use(tmp_path: Path) -> None:
    rows, labels, _ = _synthetic(20, 0)
    with pytest.raises(ConfigError, match="both correct and wrong"):
        fit_fusion(rows, [True] * len(rows))
    with pytest.raises(ConfigError, match="features"):
        fit_fusion([r[:3] for r in rows], labels)
    bad = tmp_path / "f.json"
    bad.write_text(json.dumps({"version": 0}))
    with pytest.raises(ConfigError, match="refit"):
        FusionModel.load(bad)
    with pytest.raises(ConfigError, match="refit"):
        FusionModel(mean=(0.0,), scale=(1.0,), coef=(1.0,), intercept=0.0)


@pytest.mark.asyncio
async def test_the_monitor_fuses_every_partial_and_final_score_from_its_own_prefix() -> None:
    from finece_guard.runtime.checkpoints import Periodic
    from finece_guard.runtime.monitor import RunMonitor
    from finece_guard.testing import KeywordScorer
    from finece_guard.types import CheckpointKind, TokenEvent

    rows, labels, _ = _synthetic(200, 0)
    scorer = KeywordScorer(lambda q, a, k: 0.3, delay_s=0.03)  # tokens keep coming while a score is out
    scorer.fusion = fit_fusion(rows, labels)
    monitor = RunMonitor("q?", scorer, Periodic(4))
    events = [TokenEvent(i, f"t{i} ", -0.2 if i < 6 else -2.5) for i in range(12)]
    for event in events:
        monitor.feed(event)
        await asyncio.sleep(0.01)
    trace = await monitor.finish()
    by_kind = {sc.checkpoint.kind: sc for sc in trace.checkpoints}
    assert by_kind[CheckpointKind.QUESTION].score is not None and by_kind[CheckpointKind.QUESTION].score.fused is None
    fused = []
    for sc in trace.checkpoints[1:]:
        n, final = sc.checkpoint.n_tokens, sc.checkpoint.kind is CheckpointKind.FINAL
        assert sc.score is not None and sc.score.value == pytest.approx(0.3)  # the adapter's value is kept
        prefix = events[:n]
        want = scorer.fusion.fuse(0.3, [e.logprob for e in prefix], [e.text for e in prefix], final=final)
        assert sc.score.fused == pytest.approx(want)
        fused.append(sc.score.fused)
    assert fused[0] > fused[-1]  # the later, improbable tokens lower FineCE+, not the adapter's score
    scorer.fusion = None
    plain = Score(value=0.3, spread=0.0, mass=1.0)
    assert scorer.with_fusion(plain, events, CheckpointKind.FINAL) is plain  # no model: unchanged


def test_a_stream_without_logprobs_gets_no_fused_score() -> None:
    """Missing token logprobs are no signal, not certainty: features would read them as logprob 0."""
    from finece_guard.testing import KeywordScorer
    from finece_guard.types import CheckpointKind, TokenEvent

    rows, labels, _ = _synthetic(200, 0)
    scorer = KeywordScorer(lambda q, a, k: 0.3)
    scorer.fusion = fit_fusion(rows, labels)
    score = Score(value=0.3, spread=0.0, mass=1.0)
    bare = [TokenEvent(i, f"t{i} ") for i in range(8)]  # e.g. ChatOpenAI without logprobs=True
    assert scorer.with_fusion(score, bare, CheckpointKind.FINAL).fused is None
    some = [*bare[:7], TokenEvent(7, "t7 ", -0.5)]
    assert scorer.with_fusion(score, some, CheckpointKind.FINAL).fused is not None
