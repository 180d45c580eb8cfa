"""Post-hoc recalibration of confidences (isotonic or Platt) fitted on held-out labelled answers.

Why this module exists: raw scores (FineCE's and, even more, the baselines' fixed monotone maps)
can rank answers well yet be miscalibrated. A recalibrator fitted on a calibration split maps a
raw confidence to an empirical probability of being correct, so ECE comparisons are fair and
thresholds mean what they say. It is stored as plain JSON (never pickle): loading it needs no
sklearn object and cannot execute code, and the stored numbers reproduce the outputs exactly.

Fit on one split, evaluate on another; fitting and evaluating on the same answers overstates
calibration.

A recalibrator fitted for a FineCE adapter is saved next to it (``<adapter>/recalibration.json``,
``finece-guard eval --fit-recalibration``); :func:`recalibrator_for_adapter` loads it when present,
and the scorers take it as ``recalibrator=`` (``Score.value`` recalibrated, ``Score.raw_value`` raw).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, logit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from finece_guard.errors import ConfigError, MetricError
from finece_guard.metrics import _prepare

Array = NDArray[np.float64]

#: File name a recalibrator is saved under when ``save``/``load`` are given a folder.
RECALIBRATION_FILE = "recalibration.json"

#: Confidences are clipped to [EPS, 1 - EPS] before the logit in Platt scaling.
PLATT_EPS = 1e-4

_FORMAT_VERSION = 1


def _fit_inputs(conf: Sequence[float] | Array, labels: Sequence[int | bool] | Array) -> tuple[Array, Array]:
    c, y = _prepare(conf, labels)
    if np.unique(y).size < 2:
        raise MetricError(
            f"cannot fit a recalibrator: all {y.size} labels are {int(y[0])}; "
            "the calibration split needs both correct and incorrect answers"
        )
    return c, y


def _transform_input(conf: float | Sequence[float] | Array) -> Array:
    c = np.asarray(conf, dtype=np.float64)
    if np.isnan(c).any():
        raise MetricError("confidences contain NaN; drop unscored items before recalibrating")
    if ((c < 0) | (c > 1)).any():
        raise MetricError("confidences must lie in [0, 1]")
    return c


def _floats(data: Mapping[str, Any], key: str) -> list[float]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, int | float) for v in value):
        raise ConfigError(f"recalibration data: {key!r} must be a list of numbers; re-fit and save it again")
    return [float(v) for v in value]


def _resolve(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p / RECALIBRATION_FILE if p.is_dir() else p


class Recalibrator(ABC):
    """A monotone-ish map from raw confidence to calibrated confidence, fitted on labelled answers.

    Subclasses set ``kind`` (the JSON dispatch key) and implement ``_fit``, ``_apply``,
    ``_params`` and ``_from_params``.
    """

    kind: ClassVar[str]
    n_fit: int = 0

    @property
    def fitted(self) -> bool:
        """True once fitted or loaded."""
        return self.n_fit > 0

    def fit(self, conf: Sequence[float] | Array, labels: Sequence[int | bool] | Array) -> Self:
        """Fit on raw confidences and 0/1 correctness labels; returns ``self``.

        Raises :class:`MetricError` on empty, mismatched, NaN, out-of-range or single-class input.
        """
        c, y = _fit_inputs(conf, labels)
        self._fit(c, y)
        self.n_fit = int(c.size)
        return self

    def transform(self, conf: float | Sequence[float] | Array) -> Array:
        """Calibrated confidences, same shape as ``conf``, in [0, 1]."""
        if not self.fitted:
            raise MetricError(f"{type(self).__name__} is not fitted: call fit() or load() first")
        c = _transform_input(conf)
        return np.clip(self._apply(c), 0.0, 1.0)

    def __call__(self, conf: float) -> float:
        """Calibrated value of one confidence."""
        return float(self.transform(np.float64(conf)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict holding everything needed to reproduce ``transform``."""
        if not self.fitted:
            raise MetricError(f"{type(self).__name__} is not fitted: nothing to save")
        return {"kind": self.kind, "version": _FORMAT_VERSION, "n_fit": self.n_fit, **self._params()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild from :meth:`to_dict` output (``kind`` must match this class)."""
        kind = data.get("kind")
        if kind != cls.kind:
            raise ConfigError(f"recalibration data has kind {kind!r}, expected {cls.kind!r}; use load_recalibrator()")
        version = data.get("version")
        if version != _FORMAT_VERSION:
            raise ConfigError(f"recalibration data has version {version!r}; this library reads {_FORMAT_VERSION}")
        n_fit = data.get("n_fit")
        if not isinstance(n_fit, int) or n_fit < 1:
            raise ConfigError("recalibration data: 'n_fit' must be a positive integer; re-fit and save it again")
        obj = cls._from_params(data)
        obj.n_fit = n_fit
        return obj

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write JSON to ``path`` (a folder gets ``recalibration.json``); returns the file written.

        The write is atomic (temporary file, then rename), so a reader never sees half a file.
        """
        target = _resolve(path)
        text = json.dumps(self.to_dict(), indent=2)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise ConfigError(f"cannot write recalibration file {target}: {exc}") from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
            os.replace(tmp, target)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise ConfigError(f"cannot write recalibration file {target}: {exc}") from exc
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read a file written by :meth:`save` (a folder means its ``recalibration.json``)."""
        return cls.from_dict(_read_json(path))

    @abstractmethod
    def _fit(self, c: Array, y: Array) -> None: ...

    @abstractmethod
    def _apply(self, c: Array) -> Array: ...

    @abstractmethod
    def _params(self) -> dict[str, Any]: ...

    @classmethod
    @abstractmethod
    def _from_params(cls, data: Mapping[str, Any]) -> Self: ...


class IsotonicRecalibrator(Recalibrator):
    """Non-decreasing step-linear map fitted by isotonic regression (Zadrozny & Elkan 2002).

    Fitted with sklearn's ``IsotonicRegression(increasing=True, out_of_bounds="clip")`` with
    outputs bounded to [0, 1]; the fitted breakpoints (``X_thresholds_``, ``y_thresholds_``) are
    stored and applied with ``np.interp``, which clips outside the fitted range exactly as
    sklearn does. Non-parametric: needs a few hundred labelled answers to be smooth.
    """

    kind: ClassVar[str] = "isotonic"

    def __init__(self) -> None:
        self.x_thresholds: Array = np.empty(0)
        self.y_thresholds: Array = np.empty(0)

    def _fit(self, c: Array, y: Array) -> None:
        model = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=0.0, y_max=1.0)
        model.fit(c, y)
        self.x_thresholds = np.asarray(model.X_thresholds_, dtype=np.float64)
        self.y_thresholds = np.asarray(model.y_thresholds_, dtype=np.float64)

    def _apply(self, c: Array) -> Array:
        return np.asarray(np.interp(c, self.x_thresholds, self.y_thresholds), dtype=np.float64)

    def _params(self) -> dict[str, Any]:
        return {"x_thresholds": self.x_thresholds.tolist(), "y_thresholds": self.y_thresholds.tolist()}

    @classmethod
    def _from_params(cls, data: Mapping[str, Any]) -> Self:
        x, y = _floats(data, "x_thresholds"), _floats(data, "y_thresholds")
        if not x or len(x) != len(y):
            raise ConfigError("recalibration data: x_thresholds and y_thresholds must be non-empty and equally long")
        if any(b < a for a, b in itertools.pairwise(x)):
            raise ConfigError("recalibration data: x_thresholds must be sorted ascending")
        obj = cls()
        obj.x_thresholds = np.array(x, dtype=np.float64)
        obj.y_thresholds = np.array(y, dtype=np.float64)
        return obj


class PlattRecalibrator(Recalibrator):
    """Logistic map ``sigmoid(a * logit(c) + b)`` (Platt 1999) on ``c`` clipped to [1e-4, 1 - 1e-4].

    ``a`` and ``b`` come from sklearn's ``LogisticRegression`` on the logit of the confidence.
    Two parameters: stable on small calibration sets, but cannot fix non-sigmoid distortions.
    Increasing when ``a > 0`` (the usual case); a negative ``a`` means the raw score ranks
    answers backwards on the calibration split.
    """

    kind: ClassVar[str] = "platt"

    def __init__(self, *, regularization: float = 1e6) -> None:
        """``regularization`` is sklearn's ``C`` (inverse L2 strength); large means plain Platt scaling."""
        if not regularization > 0:
            raise ConfigError(f"regularization={regularization}: use a positive number (1e6 ~ none)")
        self.regularization = regularization
        self.slope = math.nan
        self.intercept = math.nan

    @staticmethod
    def _features(c: Array) -> Array:
        return np.asarray(logit(np.clip(c, PLATT_EPS, 1.0 - PLATT_EPS)), dtype=np.float64)

    def _fit(self, c: Array, y: Array) -> None:
        model = LogisticRegression(C=self.regularization)
        model.fit(self._features(c).reshape(-1, 1), y.astype(int))
        self.slope = float(model.coef_[0, 0])
        self.intercept = float(model.intercept_[0])

    def _apply(self, c: Array) -> Array:
        return np.asarray(expit(self.slope * self._features(c) + self.intercept), dtype=np.float64)

    def _params(self) -> dict[str, Any]:
        return {"slope": self.slope, "intercept": self.intercept, "eps": PLATT_EPS}

    @classmethod
    def _from_params(cls, data: Mapping[str, Any]) -> Self:
        obj = cls()
        for key in ("slope", "intercept"):
            value = data.get(key)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigError(f"recalibration data: {key!r} must be a finite number; re-fit and save it again")
        obj.slope = float(data["slope"])
        obj.intercept = float(data["intercept"])
        return obj


_KINDS: dict[str, type[Recalibrator]] = {
    IsotonicRecalibrator.kind: IsotonicRecalibrator,
    PlattRecalibrator.kind: PlattRecalibrator,
}


def _read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    target = _resolve(path)
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"no recalibration file at {target}; fit one and save() it first") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read recalibration file {target}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"recalibration file {target} does not hold a JSON object")
    return data


def recalibrator_from_dict(data: Mapping[str, Any]) -> Recalibrator:
    """Rebuild any recalibrator from :meth:`Recalibrator.to_dict` output, dispatching on ``kind``."""
    kind = data.get("kind")
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigError(f"unknown recalibrator kind {kind!r}; expected one of {sorted(_KINDS)}")
    return cls.from_dict(data)


def load_recalibrator(path: str | os.PathLike[str]) -> Recalibrator:
    """Load a saved recalibrator of any kind (a folder means its ``recalibration.json``)."""
    return recalibrator_from_dict(_read_json(path))


def recalibrator_for_adapter(adapter_dir: str | os.PathLike[str]) -> Recalibrator | None:
    """The recalibrator saved in a FineCE adapter folder (``recalibration.json``), or None if it has none.

    Pass it to a scorer: ``OpenAICompatScorer(url, recalibrator=recalibrator_for_adapter(adapter))``.
    A file that exists but cannot be read raises :class:`ConfigError` (delete or re-fit it).
    """
    folder = Path(adapter_dir)
    if not folder.is_dir():
        raise ConfigError(f"adapter folder {folder} does not exist; pass the folder the FineCE adapter is in")
    if not (folder / RECALIBRATION_FILE).is_file():
        return None
    return load_recalibrator(folder)


def served_recalibrator(
    base_url: str, scorer_model: str = "finece", *, api_key: str = "EMPTY"
) -> tuple[Recalibrator | None, str | None]:
    """``(recalibrator, adapter folder)`` for the adapter a server serves as ``scorer_model``.

    Asks the server's ``/models`` for the adapter's folder (vLLM reports it as ``root``); when that
    folder is on this machine and holds a ``recalibration.json``, loads it, so scores of a served
    adapter that ships a recalibrator are recalibrated without the caller naming the folder.
    ``(None, folder)`` when there is none; ``(None, None)`` when the server does not say. Blocking
    (one HTTP GET): call it before the event loop, or through ``asyncio.to_thread``.
    """
    from finece_guard.backends.served_models import server_models

    entry = server_models(base_url, api_key=api_key).get(scorer_model)
    root = entry.root if entry is not None else None
    if not root or not Path(root).is_dir():
        return None, None
    return recalibrator_for_adapter(root), root
