"""Unit tests for finece_guard.evaluation.recalibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from finece_guard.errors import ConfigError, MetricError
from finece_guard.evaluation.recalibration import (
    RECALIBRATION_FILE,
    IsotonicRecalibrator,
    PlattRecalibrator,
    Recalibrator,
    load_recalibrator,
    recalibrator_from_dict,
)
from finece_guard.metrics import ece

GRID = np.linspace(0.0, 1.0, 1001)


def miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Overconfident scores: the true probability of being correct is conf**3."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.0, 1.0, n)
    labels = (rng.uniform(0.0, 1.0, n) < conf**3).astype(int)
    return conf, labels


def test_isotonic_hand_example() -> None:
    # PAV on labels (0, 1, 0, 1) at conf (0.1, 0.2, 0.3, 0.4) pools the middle pair to 0.5:
    # breakpoints (0.1, 0), (0.2, 0.5), (0.3, 0.5), (0.4, 1); linear in between, clipped outside.
    r = IsotonicRecalibrator().fit([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1])
    assert r.x_thresholds.tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert r.y_thresholds.tolist() == pytest.approx([0.0, 0.5, 0.5, 1.0])
    # 0.05 -> clipped to 0; 0.15 -> halfway 0..0.5 = 0.25; 0.25 -> 0.5; 0.35 -> halfway 0.5..1 = 0.75; 0.95 -> 1
    assert r.transform([0.05, 0.15, 0.25, 0.35, 0.95]).tolist() == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert r(0.15) == pytest.approx(0.25)
    assert isinstance(r(0.15), float)


def test_isotonic_matches_sklearn_predict() -> None:
    from sklearn.isotonic import IsotonicRegression

    conf, labels = miscalibrated(500, seed=3)
    ours = IsotonicRecalibrator().fit(conf, labels)
    theirs = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(conf, labels)
    np.testing.assert_allclose(ours.transform(GRID), theirs.predict(GRID), atol=1e-12)


@pytest.mark.parametrize("cls", [IsotonicRecalibrator, PlattRecalibrator])
def test_monotone_and_reduces_ece(cls: type[Recalibrator]) -> None:
    fit_c, fit_y = miscalibrated(3000, seed=0)
    test_c, test_y = miscalibrated(3000, seed=1)
    r = cls().fit(fit_c, fit_y)
    out = r.transform(GRID)
    assert (np.diff(out) >= 0).all()
    assert out.min() >= 0.0 and out.max() <= 1.0
    raw, recal = ece(test_c, test_y), ece(r.transform(test_c), test_y)
    # raw: E|c - c^3| = 1/2 - 1/4 = 0.25 in expectation; recalibrated must be far lower on fresh data
    assert raw > 0.2
    assert recal < 0.05
    assert recal < raw / 4


def test_platt_is_near_identity_on_calibrated_data() -> None:
    # labels ~ Bernoulli(conf): logit(P) = 1 * logit(conf) + 0, so slope ~ 1, intercept ~ 0
    rng = np.random.default_rng(7)
    conf = rng.uniform(0.02, 0.98, 20000)
    labels = (rng.uniform(0.0, 1.0, conf.size) < conf).astype(int)
    r = PlattRecalibrator().fit(conf, labels)
    assert r.slope == pytest.approx(1.0, abs=0.1)
    assert r.intercept == pytest.approx(0.0, abs=0.1)
    assert r(0.5) == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize("cls", [IsotonicRecalibrator, PlattRecalibrator])
def test_json_round_trip_identical(cls: type[Recalibrator], tmp_path: Path) -> None:
    conf, labels = miscalibrated(800, seed=5)
    r = cls().fit(conf, labels)
    written = r.save(tmp_path)  # a folder gets recalibration.json
    assert written == tmp_path / RECALIBRATION_FILE
    data = json.loads(written.read_text())
    assert data["kind"] == cls.kind and data["n_fit"] == 800
    loaded = load_recalibrator(written)
    assert type(loaded) is cls
    assert np.array_equal(loaded.transform(GRID), r.transform(GRID))
    assert np.array_equal(cls.load(tmp_path).transform(GRID), r.transform(GRID))
    assert np.array_equal(recalibrator_from_dict(r.to_dict()).transform(GRID), r.transform(GRID))


def test_isotonic_json_holds_thresholds(tmp_path: Path) -> None:
    r = IsotonicRecalibrator().fit([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1])
    path = r.save(tmp_path / "nested" / "iso.json")
    data = json.loads(path.read_text())
    assert data["x_thresholds"] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert data["y_thresholds"] == pytest.approx([0.0, 0.5, 0.5, 1.0])
    assert not list(path.parent.glob("*.tmp"))


def test_fit_errors() -> None:
    with pytest.raises(MetricError, match="both correct and incorrect"):
        IsotonicRecalibrator().fit([0.2, 0.8], [1, 1])
    with pytest.raises(MetricError, match="both correct and incorrect"):
        PlattRecalibrator().fit([0.2, 0.8], [0, 0])
    with pytest.raises(MetricError, match="empty"):
        PlattRecalibrator().fit([], [])
    with pytest.raises(MetricError):
        IsotonicRecalibrator().fit([0.2, 0.8], [1])


def test_transform_errors() -> None:
    with pytest.raises(MetricError, match="not fitted"):
        IsotonicRecalibrator().transform([0.5])
    with pytest.raises(MetricError, match="not fitted"):
        PlattRecalibrator().to_dict()
    r = IsotonicRecalibrator().fit([0.1, 0.9], [0, 1])
    with pytest.raises(MetricError, match="NaN"):
        r.transform([float("nan")])
    with pytest.raises(MetricError, match=r"\[0, 1\]"):
        r(1.5)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no recalibration file"):
        load_recalibrator(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        load_recalibrator(bad)
    bad.write_text(json.dumps({"kind": "histogram", "version": 1, "n_fit": 3}))
    with pytest.raises(ConfigError, match="unknown recalibrator kind 'histogram'"):
        load_recalibrator(bad)
    bad.write_text(json.dumps({"kind": "platt", "version": 1, "n_fit": 3, "slope": "x", "intercept": 0}))
    with pytest.raises(ConfigError, match="slope"):
        load_recalibrator(bad)
    iso = IsotonicRecalibrator().fit([0.1, 0.9], [0, 1]).to_dict()
    with pytest.raises(ConfigError, match="expected 'platt'"):
        PlattRecalibrator.from_dict(iso)


def test_served_recalibrator_follows_the_adapter_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from finece_guard.backends import served_models
    from finece_guard.backends.recalibration import IsotonicRecalibrator, served_recalibrator
    from finece_guard.backends.served_models import ServedModel

    with_file, without = tmp_path / "a", tmp_path / "b"
    without.mkdir()
    IsotonicRecalibrator().fit([0.1, 0.4, 0.6, 0.9], [0, 0, 1, 1]).save(with_file / "recalibration.json")
    models = {name: ServedModel(name, root, "smollm2") for name, root in
              (("finece", str(with_file)), ("other", str(without)), ("remote", "/not/here"))}  # fmt: skip
    monkeypatch.setattr(served_models, "server_models", lambda url, api_key: models)
    recal, folder = served_recalibrator("http://x/v1", "finece")
    assert folder == str(with_file) and recal is not None and recal.n_fit == 4
    assert served_recalibrator("http://x/v1", "other") == (None, str(without))
    assert served_recalibrator("http://x/v1", "remote") == (None, None)
    assert served_recalibrator("http://x/v1", "missing") == (None, None)
