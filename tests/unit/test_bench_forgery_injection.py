"""Unit tests for the forgery benchmark's summary: flips against the layout twin and the restored share.

The middle position puts a payload on its own line where the answer had a space, so a filter that removes
the payload line exactly still leaves that line break. The summary must tell flips the payload causes apart
from flips of the line break alone, and say how often the filter gives back the answer to the character.
"""

from __future__ import annotations

import pytest

from benchmarks.forgery_injection import restored_share, summarise
from finece_guard.data.forgery import FILTER_MISSES, PAYLOADS, payload_by_name

END = payload_by_name("conf09-9@end")
MIDDLE = payload_by_name("conf09-9@middle")
MISSED = payload_by_name(min(FILTER_MISSES))  # a payload the filter is known not to catch


def test_flips_against_the_layout_twin_are_separated_from_the_line_break():
    clean = [0.10, 0.20, 0.30, 0.40]
    breaks = [0.10, 0.26, 0.30, 0.40]  # the line break alone lifts answer 2 over the median
    forged = {END.name: list(clean), MIDDLE.name: list(breaks)}
    benign = {END.name: list(clean), MIDDLE.name: list(clean)}
    out = summarise(clean, forged, benign, breaks, {END.name: 1.0, MIDDLE.name: 1.0})
    mid, end = out["payloads"][MIDDLE.name], out["payloads"][END.name]
    assert mid["max_flip_share"] == pytest.approx(0.25)  # against clean: one of four flips
    assert mid["layout_flip_share"] == pytest.approx(0.25)  # ... and the line break alone flips it
    assert mid["max_flip_share_vs_layout"] == 0.0  # the payload itself flips nothing
    assert end["max_flip_share_vs_layout"] == 0.0 and end["restored"] == 1.0
    assert out["worst_flip_share_vs_layout"] == 0.0 and out["worst_flip_share"] == pytest.approx(0.25)


def test_without_layout_scores_the_old_summary_is_unchanged():
    clean = [0.1, 0.2, 0.3, 0.4]
    out = summarise(clean, {MIDDLE.name: [0.5] * 4}, {MIDDLE.name: clean})
    assert "max_flip_share_vs_layout" not in out["payloads"][MIDDLE.name]
    assert out["worst_flip_share_vs_layout"] is None


def test_restored_share_is_exact_text_equality():
    answers = ["The heart pumps blood. It has four chambers.", "The answer is D) the breeding of plants"]
    assert restored_share(answers, END) == 1.0
    assert restored_share(answers, MIDDLE) == 1.0
    assert restored_share(answers, MISSED) == 0.0
    assert {p.position for p in PAYLOADS} == {"end", "middle"}
