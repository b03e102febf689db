"""Evaluation reports: Markdown and a self-contained HTML page (inline CSS and SVG, no scripts).

The page holds the verdict (tuned vs base, in plain words), the metric table, one bar chart per
metric, how to read the numbers (the notes' guide), and the examples where the models differ most.
"""

from __future__ import annotations

import html
import math
import statistics
from datetime import datetime
from typing import Any

from tunesmith.eval.compare import PRIMARY, Comparison, differing_examples, verdicts
from tunesmith.eval.metrics import LOWER_IS_BETTER, tokenize

DESCRIPTIONS = {
    "rouge-1": "word overlap (F1)",
    "rouge-2": "word-pair overlap (F1)",
    "rouge-l": "longest common word sequence (F1)",
    "bleu-4": "1- to 4-gram precision x brevity",
    "exact_match": "identical after stripping white space",
    "rouge-l>=0.99": "share of answers as good as exact",
    "similarity": "MiniLM cosine similarity x 100",
    "perplexity": "of the reference answers; lower is better",
    "judge_score": "LLM judge, 1-10",
}
PALETTE = ("#8a94a6", "#2f6fde", "#e07b39", "#2e9e6a", "#9b59b6", "#c0392b")


def reading_guide(references: list[str]) -> list[str]:
    """How to read the scores for this kind of answer (the notes' rules of thumb)."""
    lengths = [len(tokenize(r)) for r in references] or [0]
    median = statistics.median(lengths)
    words = f"median {median:g} word{'s' if median != 1 else ''}"
    if median <= 3:
        kind = (f"Short, exact answers ({words}): scores near 100 are the goal; exact_match and rouge-l>=0.99 "
                "say how often an answer is exactly right.")
    else:
        kind = (f"Open-ended answers ({words}): ROUGE/BLEU of 50-60 is already high; read the "
                "examples below (and a judge score) before concluding.")
    return [kind, "A tuned model scoring below the untuned base means the data or hyper-parameters are wrong.",
            "Perplexity near 1 means the model has (nearly) memorized the references."]


def format_value(key: str, value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    if key == "perplexity" and value >= 1000:
        return f"{value:.3g}"
    return f"{value:.2f}" if key in ("perplexity", "judge_score") else f"{value:.1f}"


def best_value(cmp: Comparison, key: str) -> float | None:
    vals = [e.metrics.get(key) for e in cmp.evals if isinstance(e.metrics.get(key), (int, float))]
    if len(vals) < 2 or len(set(vals)) == 1:
        return None
    return min(vals) if key in LOWER_IS_BETTER else max(vals)


def examples_for(cmp: Comparison, k: int = 10) -> list[dict[str, Any]]:
    """Most-differing examples; for a single model, its lowest-scoring ones."""
    if len(cmp.evals) > 1:
        return differing_examples(cmp, k)
    ev = cmp.evals[0]
    order = sorted(range(len(ev.rows)), key=lambda i: (ev.rows[i]["scores"].get(PRIMARY, 0.0), i))[:k]
    return [{"index": i, "prompt": ev.rows[i].get("prompt", ""), "reference": ev.rows[i]["reference"],
             "answers": [{"label": ev.label, "prediction": ev.rows[i]["prediction"],
                          PRIMARY: ev.rows[i]["scores"].get(PRIMARY)}]} for i in order]


def _cell(text: str, limit: int = 160) -> str:
    """One line, at most ``limit`` characters."""
    text = " ".join(str(text).split())
    return (text if len(text) <= limit else text[:limit - 1] + "…") or "(empty)"


def _md(text: str, limit: int = 160) -> str:
    return _cell(text, limit).replace("|", "\\|")


def settings_line(cmp: Comparison) -> str:
    gen = cmp.evals[0].info.get("generation", {}) if cmp.evals else {}
    if not gen:
        return ""
    mode = "greedy" if gen.get("temperature", 0) <= 0 else f"temperature {gen['temperature']}, top_p {gen['top_p']}"
    return f"{mode}, max_new_tokens {gen.get('max_new_tokens')}"


def markdown(cmp: Comparison, references: list[str]) -> str:
    """The report as Markdown (what the web UI shows)."""
    n = len(cmp.evals[0].rows) if cmp.evals else 0
    title = " vs ".join(cmp.labels)
    lines = [f"# Evaluation: {title}", "", f"Split `{cmp.split}`, {n} examples, generation: {settings_line(cmp)}.", ""]
    lines += [f"**{v}**" if v.startswith("WORSE") else v for v in verdicts(cmp)] + [""]
    lines += ["| metric | " + " | ".join(cmp.labels) + " | meaning |", "|---|" + "---:|" * len(cmp.labels) + "---|"]
    for key in cmp.metric_keys():
        best = best_value(cmp, key)
        cells = []
        for e in cmp.evals:
            v = e.metrics.get(key)
            cells.append(f"**{format_value(key, v)}**" if best is not None and v == best else format_value(key, v))
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {DESCRIPTIONS.get(key, '')} |")
    lines += ["", "How to read this:", *[f"- {g}" for g in reading_guide(references)], ""]
    single = len(cmp.evals) == 1
    lines += [f"## {'Lowest-scoring examples' if single else 'Where the models differ most'} (by {PRIMARY})", "",
              "| # | prompt | reference | " + " | ".join(cmp.labels) + " |",
              "|---|---|---|" + "---|" * len(cmp.labels)]
    for ex in examples_for(cmp):
        answers = [f"{_md(a['prediction'], 100)} ({format_value(PRIMARY, a[PRIMARY])})" for a in ex["answers"]]
        lines.append(f"| {ex['index']} | {_md(ex['prompt'])} | {_md(ex['reference'], 100)} | "
                     + " | ".join(answers) + " |")
    return "\n".join(lines) + "\n"


def _bar_chart(cmp: Comparison, key: str) -> str:
    vals = [e.metrics.get(key) for e in cmp.evals]
    nums = [v for v in vals if isinstance(v, (int, float))]
    log = key == "perplexity"
    top = 10.0 if key == "judge_score" else 100.0
    if log:
        top = max([math.log10(max(v, 1.0)) for v in nums] + [1.0])
    row_h, label_w, bar_w = 26, 130, 190
    height = row_h * len(vals) + 8
    width = label_w + bar_w + 70
    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" role="img" '
             f'aria-label="{html.escape(key)}">']
    for i, (e, v) in enumerate(zip(cmp.evals, vals)):
        y = 4 + i * row_h
        color = PALETTE[i % len(PALETTE)]
        share = 0.0
        if isinstance(v, (int, float)):
            share = (math.log10(max(v, 1.0)) if log else max(v, 0.0)) / top
        bar = max(1.0, bar_w * min(share, 1.0))
        label = e.label if len(e.label) <= 18 else "…" + e.label[-17:]
        parts += [
            f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end" class="lbl">{html.escape(label)}</text>',
            f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="{row_h - 8}" class="track"/>',
            f'<rect x="{label_w}" y="{y + 3}" width="{bar:.1f}" height="{row_h - 8}" fill="{color}"/>',
            f'<text x="{label_w + bar_w + 6}" y="{y + 16}" class="val">{format_value(key, v)}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans","Noto Sans CJK SC",sans-serif;
 margin:24px auto;max-width:1120px;color:#1d2330;padding:0 16px;line-height:1.45}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid #e3e6ec;padding-bottom:4px}
.meta{color:#5b6475;margin:0 0 16px}
.verdict{padding:10px 14px;border-radius:6px;margin:8px 0;font-weight:600}
.bad{background:#fdecea;color:#a0281c;border:1px solid #f3b8b1}
.good{background:#e8f6ee;color:#1d6b43;border:1px solid #acdcc0}
.same{background:#f3f4f7;color:#39404d;border:1px solid #d9dde5}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{border:1px solid #e3e6ec;padding:6px 8px;vertical-align:top}
th{background:#f6f7f9;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.best{font-weight:700;color:#1d6b43}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
figure{margin:0;border:1px solid #e3e6ec;border-radius:6px;padding:8px 10px}
figcaption{font-weight:600;font-size:14px}
figcaption small{font-weight:400;color:#5b6475}
.lbl,.val{font-size:12px;fill:#39404d}
.track{fill:#f0f1f4}
.guide li{margin:2px 0}
.ex td{max-width:260px;overflow-wrap:anywhere}
.score{color:#5b6475;font-size:12px}
.hi{background:#f2fbf6}
.lo{background:#fdf3f2}
"""


def _verdict_html(text: str) -> str:
    cls = "bad" if text.startswith("WORSE") else ("good" if text.startswith("BETTER") else "same")
    return f'<div class="verdict {cls}">{html.escape(text)}</div>'


def html_page(cmp: Comparison, references: list[str]) -> str:
    """The report as one self-contained HTML page."""
    esc = html.escape
    n = len(cmp.evals[0].rows) if cmp.evals else 0
    title = " vs ".join(cmp.labels)
    when = datetime.now().strftime("%Y-%m-%d %H:%M")
    out = [f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc("Evaluation: " + title)}</title>',
           f"<style>{CSS}</style></head><body>", f"<h1>Evaluation: {esc(title)}</h1>",
           f'<p class="meta">split <b>{esc(cmp.split)}</b> · {n} examples · generation: {esc(settings_line(cmp))}'
           f" · {when}</p>"]
    out += [_verdict_html(v) for v in verdicts(cmp)]
    out.append("<h2>Metrics</h2><table><tr><th>metric</th>" + "".join(f"<th>{esc(x)}</th>" for x in cmp.labels)
               + "<th>meaning</th></tr>")
    for key in cmp.metric_keys():
        best = best_value(cmp, key)
        cells = "".join(f'<td class="num{" best" if best is not None and e.metrics.get(key) == best else ""}">'
                        f"{format_value(key, e.metrics.get(key))}</td>" for e in cmp.evals)
        out.append(f"<tr><td>{esc(key)}</td>{cells}<td>{esc(DESCRIPTIONS.get(key, ''))}</td></tr>")
    out.append("</table><h2>Per metric</h2><div class=\"charts\">")
    for key in cmp.metric_keys():
        hint = "lower is better, log scale" if key in LOWER_IS_BETTER else "higher is better"
        out.append(f"<figure><figcaption>{esc(key)} <small>{hint}</small></figcaption>{_bar_chart(cmp, key)}</figure>")
    out.append('</div><h2>How to read this</h2><ul class="guide">'
               + "".join(f"<li>{esc(g)}</li>" for g in reading_guide(references)) + "</ul>")
    single = len(cmp.evals) == 1
    out.append(f"<h2>{'Lowest-scoring examples' if single else 'Where the models differ most'} (by {PRIMARY})</h2>"
               '<table class="ex"><tr><th>#</th><th>prompt</th><th>reference</th>'
               + "".join(f"<th>{esc(x)}</th>" for x in cmp.labels) + "</tr>")
    for ex in examples_for(cmp):
        scores = [a[PRIMARY] for a in ex["answers"]]
        hi, lo = max(scores), min(scores)
        cells = []
        for a in ex["answers"]:
            cls = ' class="hi"' if a[PRIMARY] == hi and hi != lo else (' class="lo"' if a[PRIMARY] == lo and hi != lo
                                                                         else "")
            cells.append(f"<td{cls}>{esc(_cell(a['prediction'], 300))}<div class=\"score\">{PRIMARY} "
                         f"{format_value(PRIMARY, a[PRIMARY])}</div></td>")
        out.append(f"<tr><td>{ex['index']}</td><td>{esc(_cell(ex['prompt'], 300))}</td>"
                   f"<td>{esc(_cell(ex['reference'], 300))}</td>{''.join(cells)}</tr>")
    out.append("</table></body></html>")
    return "\n".join(out) + "\n"

