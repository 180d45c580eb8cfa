"""Moved: recalibration lives next to the scorers that apply it, in :mod:`finece_guard.backends.recalibration`.

This module keeps the old import path working.
"""

from finece_guard.backends.recalibration import (
    PLATT_EPS,
    RECALIBRATION_FILE,
    IsotonicRecalibrator,
    PlattRecalibrator,
    Recalibrator,
    load_recalibrator,
    recalibrator_for_adapter,
    recalibrator_from_dict,
    served_recalibrator,
)

__all__ = [
    "PLATT_EPS",
    "RECALIBRATION_FILE",
    "IsotonicRecalibrator",
    "PlattRecalibrator",
    "Recalibrator",
    "load_recalibrator",
    "recalibrator_for_adapter",
    "recalibrator_from_dict",
    "served_recalibrator",
]
