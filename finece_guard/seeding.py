"""Reproducible per-item seeds: one sampling seed per (run seed, item, purpose).

Data construction and evaluation sample with a seed derived from the run's ``--seed``, the
question's key and what the sample is for (``"answers"``, ``"look-ahead"`` ...), so a resumed or
re-ordered run draws the same samples for the same question.
"""

from __future__ import annotations

import hashlib


def derived_seed(base: int, *parts: object) -> int:
    """A 31-bit seed from ``base`` and ``parts`` (SHA-256 of their ``|``-joined text)."""
    digest = hashlib.sha256("|".join(map(str, (base, *parts))).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
