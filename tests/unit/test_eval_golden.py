"""Golden comparison: the same records give the same report, byte for byte.

``golden/records-test.jsonl.gz`` are 120 real evaluation records (arc_easy + sciq, default adapter,
``finece-guard eval --limit 60 --sc-n 0 --bootstrap 200``, 2026-12-01). ``golden/report.{json,md}`` is
the report that run wrote; ``golden/report-recal-compare.{json,md}`` was written from the same records by
the code before the evaluation package was split (issue 13), with an isotonic recalibrator fitted on the
even records and a comparison against a flipped reference, so recalibration, comparison and every
table are pinned too. A refactor that changes any number or any line of Markdown fails here.
Regenerated once on 2026-12-02 (issue 11): Table I gained each group's share of answers with no committed
answer (``no_final``); no other byte changed.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from finece_guard.backends.recalibration import IsotonicRecalibrator
from finece_guard.evaluation.compare import comparison_section, with_scores
from finece_guard.evaluation.markdown import render_markdown
from finece_guard.evaluation.records import AnswerRecord, read_records
from finece_guard.evaluation.report import build_report, report_json
from finece_guard.evaluation.settings import EvalConfig

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[AnswerRecord]:
    path = tmp_path_factory.mktemp("golden") / "records-test.jsonl"
    path.write_bytes(gzip.decompress((GOLDEN / "records-test.jsonl.gz").read_bytes()))
    recs = read_records(path)
    assert len(recs) == 120
    return recs


def _committed(name: str) -> tuple[dict[str, Any], str, str]:
    text = (GOLDEN / f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text), text, (GOLDEN / f"{name}.md").read_text(encoding="utf-8")


def _config(report: dict[str, Any]) -> EvalConfig:
    settings = dict(report["settings"])
    settings["strategies"] = tuple(settings["strategies"])
    return EvalConfig(**settings)


def test_committed_report_is_reproduced_byte_for_byte(records: list[AnswerRecord]) -> None:
    old, old_json, old_md = _committed("report")
    report = build_report(records, config=_config(old), info=old["run"], n_resamples=old["bootstrap"]["n_resamples"])
    assert report_json(report) == old_json
    assert render_markdown(report) == old_md


def test_recalibration_and_comparison_are_reproduced(records: list[AnswerRecord]) -> None:
    old, old_json, old_md = _committed("report-recal-compare")
    fit = records[::2]
    recal = IsotonicRecalibrator().fit([r.full_score for r in fit], [r.correct for r in fit])
    flipped = [
        with_scores(r, [(0.05 + 0.9 * (1 - s.value), s.spread, s.mass) for s in r.states], alpha=0.5, window=2)
        for r in records
    ]
    comparison = comparison_section(
        records, flipped, reference_label="flipped", strategy="paragraph", n_resamples=200, seed=0
    )
    report = build_report(
        records, config=_config(old), info=old["run"], recalibrator=recal,
        recalibration_source={"path": "golden", "fitted_on": "even records"}, n_resamples=200, comparison=comparison,
    )  # fmt: skip
    assert report_json(report) == old_json
    assert render_markdown(report) == old_md
