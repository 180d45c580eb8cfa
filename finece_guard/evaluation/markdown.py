"""The report as Markdown (what ``report.md`` holds), from the dict :func:`.report.build_report` returns."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from finece_guard.evaluation.tables import BASELINE_LABELS, COMPARE_POSITIONS, METRICS, Cell


def fmt_cell(c: Cell | None) -> str:
    """``0.123 [0.050, 0.200]``; ``0.123 [-]`` without interval; ``n/a`` when undefined."""
    if c is None or c.get("value") is None:
        return "n/a"
    value = float(c["value"])
    if c.get("low") is None or c.get("high") is None:
        return f"{value:.3f} [-]"
    return f"{value:.3f} [{float(c['low']):.3f}, {float(c['high']):.3f}]"


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{float(v):.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _signed(c: dict[str, Any]) -> str:
    if c.get("value") is None:
        return "n/a"
    if c.get("low") is None:
        return f"{float(c['value']):+.3f} [-]"
    return f"{float(c['value']):+.3f} [{float(c['low']):+.3f}, {float(c['high']):+.3f}]"


def comparison_markdown(comp: dict[str, Any] | None) -> list[str]:
    """The report section comparing this adapter with a reference adapter on the same answers
    (``report["adapter_comparison"]``; empty without one). Also used by ``benchmarks/rescore_same_answers.py``."""
    if not comp:
        return []
    lines = ["", "## This adapter vs a reference adapter, on the same answers", ""]
    lines.append(
        f"Reference: {comp['reference']}. Both adapters scored the same {comp['n_compared']} answers at the same "
        f"states (p(1) = first {comp['strategy']} checkpoint). Δ = this − reference with a paired bootstrap 95% "
        "interval (same resampled answers for both); an interval that excludes 0 is a real difference."
    )
    for group, g in comp["groups"].items():
        lines += ["", f"### {group} (n = {g['n']})", ""]
        rows = []
        for pos, label in COMPARE_POSITIONS:
            r = g["positions"][pos]
            rows.append([label, fmt_cell(r["this"]["auroc"]), fmt_cell(r["reference"]["auroc"]),
                         _signed(r["difference"]["auroc"]), fmt_cell(r["this"]["ece"]), fmt_cell(r["reference"]["ece"]),
                         _signed(r["difference"]["ece"]), _signed(r["difference"]["brier"])])  # fmt: skip
        lines += _table(["position", "AUROC this", "AUROC ref", "ΔAUROC", "ECE this", "ECE ref", "ΔECE",
                         "ΔBrier"], rows)  # fmt: skip
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown (what ``report.md`` holds)."""
    run = report.get("run", {})
    settings = report.get("settings") or {}
    lines: list[str] = ["# finece-guard evaluation report", ""]
    for w in report.get("warnings", []):
        lines.append(f"> **Warning:** {w}")
    if report.get("warnings"):
        lines.append("")
    adapter = run.get("adapter") or {}
    machine = run.get("machine") or {}
    trained = adapter.get("trained")
    lines += [
        "## Run",
        "",
        f"- date (UTC): {run.get('date', 'n/a')}",
        f"- command: `{run.get('command', 'n/a')}`",
        f"- server: {run.get('server_url', 'n/a')}",
        f"- generator: `{run.get('generator_model', 'n/a')}` ({run.get('generator_path', 'n/a')})",
        f"- scorer: `{run.get('scorer_model', 'n/a')}` = adapter {adapter.get('path', 'n/a')} "
        f"(manifest: trained={'unknown' if trained is None else trained}"
        + (f"; {adapter['note']}" if adapter.get("note") else "") + ")",
        f"- machine: {machine.get('platform', 'n/a')}, {machine.get('cpu_count', '?')} CPUs, "
        f"Python {machine.get('python', '?')}",
        f"- partition: {settings.get('partition', 'n/a')}; n per task: "
        + ", ".join(f"{k} = {v}" for k, v in (run.get("n_per_task") or {}).items()),
        f"- generation: greedy, max_tokens={settings.get('max_tokens')}, top_logprobs={settings.get('top_logprobs')} "
        f"(entropy and DeepConf are truncated top-k estimates); answers that hit max_tokens: "
        f"{run.get('truncated_answers', 0)}",
        f"- checkpoints: {', '.join(settings.get('strategies') or [])}; BCI alpha={settings.get('alpha')}, "
        f"window={settings.get('window')}; look-ahead "
        + (f"w={settings.get('lookahead_w')}, d={settings.get('lookahead_d')}"
           if settings.get("lookahead_w") else "off"),
        f"- self-consistency samples: {settings.get('sc_n')}; DeepConf window: {settings.get('deepconf_window')} "
        f"tokens; seed: {settings.get('seed')}",
        f"- bootstrap: {report['bootstrap']['n_resamples']} resamples, 95% percentile intervals",
    ]  # fmt: skip
    if run.get("wall_time_s") is not None:
        lines.append(
            f"- wall time of this invocation (before the report): {float(run['wall_time_s']):.1f} s; "
            f"failed questions this invocation: {run.get('failed', 0)}"
        )
    if run.get("answer_seconds") is not None:
        lines.append(
            f"- time per answer (generation + scoring + baselines, as recorded): mean "
            f"{float(run['answer_seconds']['mean']):.1f} s, total {float(run['answer_seconds']['total']):.1f} s "
            f"over {run['n_total']} answers, up to {run.get('concurrency', '?')} questions in flight"
        )
    lines += ["", "## Table I: confidence estimators on the same answers", ""]
    lines.append(
        "ECE / AUROC / Brier with 95% bootstrap intervals (`[-]`: interval undefined, `n/a`: metric "
        "undefined, e.g. AUROC when all answers are correct or all wrong). Baselines other than First-Prob, "
        "P(True), verbalized and self-consistency are fixed monotone maps: compare their AUROC, not their ECE."
    )
    for group, t1 in report["table1"].items():
        unreadable = f", no committed answer {float(t1['no_final']):.1%}" if "no_final" in t1 else ""
        lines += ["", f"### {group} (n = {t1['n']}, accuracy {fmt_cell(t1['accuracy'])}{unreadable})", ""]
        rows = [
            [method, fmt_cell(m["ece"]), fmt_cell(m["auroc"]), fmt_cell(m["brier"]), str(m["n"])]
            for method, m in t1["methods"].items()
        ]
        lines += _table(["method", "ECE ↓", "AUROC ↑", "Brier ↓", "n"], rows)
    lines += ["", "## Table II: FineCE along the answer, raw and with BCI", ""]
    lines.append(
        "p(1) = first checkpoint after the question; p(z-1) = last partial checkpoint (for an answer with "
        "no partial checkpoint, p(1) is the full answer and p(z-1) the question). +BCI = retrospective "
        "eq. 5 over the whole trace: it uses later checkpoints, so it exists only once the answer is "
        "finished (what acceptance and filtering use); a guard acting mid-stream sees the raw rows."
    )
    for group, per_strategy in report["table2"].items():
        for name, rows_ in per_strategy.items():
            lines += ["", f"### {group}, {name}", ""]
            rows = [[pos, fmt_cell(r["ece"]), fmt_cell(r["auroc"]), fmt_cell(r["brier"])] for pos, r in rows_.items()]
            lines += _table(["position", "ECE ↓", "AUROC ↑", "Brier ↓"], rows)
    lines += ["", "## Table IV: early-stage estimation per checkpoint strategy", ""]
    lines.append("ECE_p1 at the first checkpoint; ECE_avg over every checkpoint after the question (pooled); token "
                 "ratio = mean share of the answer's tokens generated by the first checkpoint.")  # fmt: skip
    rows = []
    for group, per_strategy in report["table4"].items():
        for name, r in per_strategy.items():
            rows.append([
                group, name, _num(r["ece_p1"]), _num(r["ece_p1_bci"]), _num(r["ece_avg"]), _num(r["ece_avg_bci"]),
                "n/a" if r["token_ratio"] is None else f"{100 * r['token_ratio']:.1f}%",
                _num(r["checkpoints_per_answer"], 2), f"{100 * r['no_partial_share']:.0f}%",
            ])  # fmt: skip
    header = ["task", "strategy", "ECE_p1", "ECE_p1 +BCI", "ECE_avg", "ECE_avg +BCI", "token ratio",
              "partial checkpoints / answer", "answers without a partial checkpoint"]  # fmt: skip
    lines += ["", *_table(header, rows)]
    recal = report.get("recalibration")
    lines += ["", "## Recalibration", ""]
    if recal is None:
        lines.append("No recalibrator: none was fitted (`--fit-recalibration`) and none sits next to the adapter.")
    else:
        lines.append(f"{recal['kind']} recalibrator fitted on {recal.get('fitted_on', 'n/a')} "
                     f"(n = {recal['n_fit']}), file {recal.get('path', 'n/a')}; full-answer FineCE score on "
                     f"the evaluated partition:")  # fmt: skip
        rows = []
        for group, g in recal["groups"].items():
            for when in ("before", "after"):
                rows.append([group, when] + [fmt_cell(g[when][m]) for m in METRICS])
        lines += ["", *_table(["task", "", "ECE ↓", "AUROC ↑", "Brier ↓"], rows)]
    lines += comparison_markdown(report.get("adapter_comparison"))
    th = report["thresholds"]
    lines += ["", "## Threshold suggestions (all tasks pooled, evaluated partition)", ""]
    for scale, a in th["accept"].items():
        if "error" in a:
            target = th["target_precision"]
            lines.append(f"- accept ({scale} full-answer score), target precision {target}: {a['error']}")
        else:
            lines.append(
                f"- accept ({scale} full-answer score) when confidence >= **{a['threshold']:.3f}**: precision "
                f"{a['precision']:.3f} at coverage {a['coverage']:.3f} ({a['n_accepted']} answers), target "
                f"{th['target_precision']}"
            )
    for name, a in th["abort"].items():
        if "error" in a:
            lines.append(f"- abort at the first {name} checkpoint: {a['error']}")
        else:
            lines.append(
                f"- abort at the first {name} checkpoint when raw confidence < **{a['threshold']:.3f}**: saves "
                f"{100 * a['tokens_saved_share']:.1f}% of all generated tokens, aborts "
                f"{100 * a['wrong_aborted_share']:.0f}% of wrong answers, loses {100 * a['correct_lost_share']:.0f}% "
                f"of correct ones (allowed: {100 * th['max_correct_lost']:.0f}%)"
            )
    for name, a in th.get("abort_for_savings", {}).items():
        budget = 100 * th["token_savings"]
        if "error" in a:
            lines.append(f"- abort at the first {name} checkpoint to save {budget:.0f}% of tokens: {a['error']}")
        else:
            lines.append(
                f"- to save {budget:.0f}% of tokens, abort at the first {name} checkpoint when raw confidence < "
                f"**{a['threshold']:.3f}**: saves {100 * a['tokens_saved_share']:.1f}%, loses "
                f"{100 * a['correct_lost_share']:.0f}% of correct answers"
            )
    failures = {k: v for k, v in report.get("baseline_failures", {}).items() if v}
    if failures:
        lines += ["", "Baselines without a value on some answers (left out of their rows): "
                  + ", ".join(f"{BASELINE_LABELS[k]} {v}" for k, v in failures.items())]  # fmt: skip
    if report.get("plots"):
        lines += ["", "## Figures", ""]
        lines += [f"![{p}]({p})" for p in report["plots"]]
    return "\n".join(lines) + "\n"
