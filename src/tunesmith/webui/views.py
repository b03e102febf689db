"""Text and tables the UI shows about a job, built from its files (no UI library needed)."""

from __future__ import annotations

import time
from typing import Any

from tunesmith.webui.i18n import t
from tunesmith.webui.jobs import ACTIVE_STATES, FAILED, STOPPED, Job


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"
    return str(value)


SERIES = ("loss", "eval_loss")


def _pct(value: Any) -> str:
    """A 0-100 score with one decimal, as the CLI prints it."""
    return f"{value:.1f}" if isinstance(value, int | float) else "–"


def curve_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Long-format points (step, value, series) for the loss and eval-loss curve."""
    points = []
    for row in rows:
        for series in SERIES:
            if series in row and "train_runtime" not in row:
                points.append({"step": row["step"], "value": float(row[series]), "series": series})
    return points


def curve_frame(rows: list[dict[str, Any]]) -> Any:
    """The curve as a pandas DataFrame (columns step, value, series).

    Both series are always present (a NaN point stands in for one not logged yet) and the columns are
    typed: the plot takes its axes and legend from the first value it is given, and an empty frame
    would make them categorical and the legend empty.
    """
    import pandas as pd

    points = curve_rows(rows)
    placeholder_steps = (0,) if points else (0, 10)  # an empty plot still gets a sensible step axis
    for series in SERIES:
        if not any(p["series"] == series for p in points):
            points += [{"step": step, "value": float("nan"), "series": series} for step in placeholder_steps]
    frame = pd.DataFrame(points, columns=["step", "value", "series"])
    return frame.astype({"step": "int64", "value": "float64", "series": "str"})


def status_markdown(job: Job | None, lang: str) -> str:
    """One status line for a job: state, step, latest losses, elapsed time; then where its files are."""
    if job is None:
        return t("no_job", lang)
    state = job.state()
    rows = job.log_rows()
    last = next((r for r in reversed(rows) if "loss" in r), {})
    last_eval = next((r for r in reversed(rows) if "eval_loss" in r), {})
    info = job.exit_info() or {}
    ended = info.get("ended") if state not in ACTIVE_STATES else None
    elapsed = (ended or time.time()) - job.spec["started"]
    max_steps = next((r["max_steps"] for r in reversed(rows) if r.get("max_steps")), None)
    line = t("job_line", lang, id=job.id, state=t(f"state_{state}", lang), step=last.get("step", 0),
             max_steps=_num(max_steps), loss=_num(last.get("loss")), eval_loss=_num(last_eval.get("eval_loss")),
             elapsed=round(elapsed))
    if state in ACTIVE_STATES and any("train_runtime" in r for r in rows):
        line += " · " + t("after_training", lang)  # saving, scoring base vs tuned, diagnosing
    files = t("job_files", lang, out=f"`{job.spec['output_dir']}`", config=f"`{job.config_path}`")
    return f"**{line}**  \n{files}"


def _comparison_table(comparison: dict[str, Any], lang: str) -> str:
    lines = [f"**{t('base_vs_tuned', lang, n=comparison.get('n', '?'))}**", "",
             f"| {t('metric', lang)} | {t('base', lang)} | {t('tuned', lang)} |", "|---|---:|---:|"]
    for key, tuned in comparison.get("tuned", {}).items():
        base = comparison.get("base", {}).get(key)
        lines.append(f"| {key} | {_pct(base)} | {_pct(tuned)} |")
    return "\n".join(lines)


def diagnosis_markdown(rows: list[dict[str, Any]], lang: str) -> str:
    """The loss-curve diagnosis ``tunesmith train`` prints at the end (eval.diagnose), as Markdown."""
    from tunesmith.eval.diagnose import diagnose_rows
    from tunesmith.utils.errors import TunesmithError

    try:
        diag = diagnose_rows(rows)
    except (TunesmithError, ValueError, KeyError):
        return ""
    lines = [f"**{t('diagnosis', lang)}**", ""]
    for f in diag.findings:
        lines += [f"- **{f.title}**", f"  - {t('evidence', lang)}: {f.evidence}",
                  f"  - {t('what_to_do', lang)}: {f.advice}"]
    return "\n".join(lines)


def result_markdown(job: Job | None, lang: str) -> str:
    """What a finished (or stopped, or failed) run produced: metrics, base vs tuned, diagnosis, checkpoints."""
    if job is None or job.state() in ACTIVE_STATES:
        return ""
    parts = []
    summary = job.summary()
    m = summary.get("metrics", {})
    if m:
        parts.append(t("summary_line", lang, steps=m.get("steps"), seconds=_num(m.get("wall_time_s")),
                       first=_num(m.get("first_loss")), final=_num(m.get("final_loss")),
                       eval_loss=_num(m.get("final_eval_loss")), tps=_num(m.get("tokens_per_s"), 3),
                       mem=_num(m.get("peak_rss_mb"))))
    if summary.get("base_vs_tuned"):
        parts.append(_comparison_table(summary["base_vs_tuned"], lang))
    diagnosis = diagnosis_markdown(job.log_rows(), lang)
    if diagnosis:
        parts.append(diagnosis)
    state = job.state()
    if state in (STOPPED, FAILED) or not m:
        names = [p.name for p in job.checkpoints()]
        if names:
            parts.append(t("checkpoints", lang, names=", ".join(names)) + "  \n" + t("resume_hint", lang))
    return "\n\n".join(parts)


LEVEL_MARK = {"ok": "✓", "info": "ℹ", "warn": "⚠"}


def advice_markdown(report: dict[str, Any], lang: str) -> str:
    """``tunesmith advise --json`` as a list that reads in a narrow column: warnings and notes first
    (setting: current → recommended, why, the notes' source), then the settings that are fine."""
    rows = report.get("advice", [])
    changes = report.get("changes") or {}
    out = [t("advice_changes", lang, changes=", ".join(f"`{k}={v}`" for k, v in changes.items()))
           if changes else t("advice_no_changes", lang), ""]
    for level in ("warn", "info"):
        for r in (r for r in rows if r.get("level") == level):
            arrow = f"{r.get('current', '')} → **{r.get('recommended', '')}**" \
                if r.get("current") != r.get("recommended") else str(r.get("current", ""))
            out.append(f"- {LEVEL_MARK[level]} `{r['key']}`: {arrow}  \n  {r.get('reason', '')}"
                       + (f"  \n  <sub>{r['source']}</sub>" if r.get("source") else ""))
            out += [f"  - {d}" for d in r.get("details", [])[:5]]
    fine = [f"`{r['key']}`" for r in rows if r.get("level") == "ok"]
    if fine:
        out += ["", f"{LEVEL_MARK['ok']} {t('advice_fine', lang)}: " + ", ".join(fine)]
    return "\n".join(out)
