"""Moved: recalibration lives next to the scorers that apply it, in :mod:`finece_guard.backends.recalibration`.

This old import path is that very module (``sys.modules`` alias), so both paths give the same objects.
"""

import sys

from finece_guard.backends import recalibration

sys.modules[__name__] = recalibration
