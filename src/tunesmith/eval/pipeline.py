"""The three things ``tunesmith eval`` does, each writing its files atomically into one folder:

- ``evaluate``: one model (or several with ``--compare``) on a split: predictions, metrics, reports;
- ``score_file``: metrics (and a judge) for predictions someone already has (``--predictions``);
- ``benchmark``: multiple-choice accuracy for one or several models (``--benchmark``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tunesmith.config.schema import Config
from tunesmith.eval.compare import Comparison, run_compare
from tunesmith.eval.evaluate import (
    ModelEval,
    Target,
    default_target,
    load_eval_examples,
    results_dir,
    score_rows,
    write_results,
)
from tunesmith.eval.report import html_page, markdown
from tunesmith.utils.errors import DataFormatError
from tunesmith.utils.io import write_json, write_jsonl, write_text


def slug(label: str) -> str:
    """A folder name for a model label ('saves/quickstart' -> 'saves_quickstart')."""
    return re.sub(r"[^\w.-]+", "_", label).strip("_.") or "model"


def _beside_config(cfg: Config, path: str | None) -> str | None:
    """A relative path that does not exist from here is looked up beside the YAML (like dataset_dir)."""
    if path and cfg.source and not Path(path).is_absolute() and not Path(path).exists():
        candidate = Path(cfg.source).parent / path
        if candidate.exists():
            return str(candidate)
    return path


def make_judge(cfg: Config) -> Any:
    """A function that grades a ModelEval's rows in place, or None when no judge_endpoint is set."""
    if not cfg.eval.judge_endpoint:
        return None
    from rich.progress import Progress

    from tunesmith.eval.judge import Judge, judge_summary, read_rubric
    from tunesmith.utils.console import console, progress_columns

    judge = Judge(cfg.eval.judge_endpoint, cfg.eval.judge_model, api_key=cfg.eval.judge_api_key,
                  rubric=read_rubric(_beside_config(cfg, cfg.eval.judge_rubric)))

    def grade(ev: ModelEval) -> None:
        with Progress(*progress_columns(), console=console, transient=True) as bar:
            task = bar.add_task(f"judge ({ev.label})", total=len(ev.rows), info=judge.model)
            verdicts = judge.grade_rows(ev.rows, progress=lambda n: bar.advance(task, n))
        for row, v in zip(ev.rows, verdicts):
            row["judge"] = {"score": v.score, "reason": v.reason}
        ev.metrics.update(judge_summary(verdicts))
        ev.info["judge"] = {"endpoint": judge.endpoint, "model": judge.model}

    return grade


def _write_judge(out_dir: Path, ev: ModelEval) -> dict[str, Path]:
    if not any("judge" in r for r in ev.rows):
        return {}
    rows = [{k: r.get(k) for k in ("prompt", "reference", "prediction")} | (r.get("judge") or {}) for r in ev.rows]
    return {"judge": write_jsonl(out_dir / "judge.jsonl", rows)}


def _write_reports(out_dir: Path, stem: str, cmp: Comparison, references: list[str]) -> dict[str, Path]:
    return {"report_md": write_text(out_dir / f"{stem}.md", markdown(cmp, references)),
            "report_html": write_text(out_dir / f"{stem}.html", html_page(cmp, references))}


def evaluate(cfg: Config, targets: list[Target] | None = None) -> tuple[Comparison, dict[str, Path]]:
    """Score one model (``targets`` None: the config's) or compare several; write every file."""
    single = targets is None
    targets = targets or [default_target(cfg)]
    out_dir = results_dir(cfg, targets[0] if single else None)
    examples = load_eval_examples(cfg)
    cmp = run_compare(cfg, targets, examples, judge=make_judge(cfg))
    refs = [e.response for e in examples]
    files: dict[str, Path] = {}
    if single:
        files |= write_results(out_dir, cmp.evals[0], cmp.split) | _write_judge(out_dir, cmp.evals[0])
        files |= _write_reports(out_dir, "report", cmp, refs)
        return cmp, files
    for ev in cmp.evals:
        sub = out_dir / "compare" / slug(ev.label)
        paths = write_results(sub, ev, cmp.split) | _write_judge(sub, ev)
        files |= {f"{slug(ev.label)}/{k}": v for k, v in paths.items()}
    files["compare_json"] = write_json(out_dir / "compare.json", cmp.to_dict())
    files |= _write_reports(out_dir, "compare", cmp, refs)
    return cmp, files


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Rows with prompt / reference / prediction; LLaMA-Factory's ``label`` / ``predict`` work too."""
    p = Path(path)
    if not p.is_file():
        raise DataFormatError(f"{str(p)!r} does not exist", hint="pass a .jsonl file of prediction rows")
    rows = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{p}:{i}: not a JSON line ({exc.msg})") from exc
        rec = rec if isinstance(rec, dict) else {}
        pred, ref = rec.get("prediction", rec.get("predict")), rec.get("reference", rec.get("label"))
        if not isinstance(pred, str) or not isinstance(ref, str):
            raise DataFormatError(f"{p}:{i}: needs string fields 'prediction' and 'reference'",
                                  hint="rows look like {\"prompt\": ..., \"reference\": ..., \"prediction\": ...} "
                                  "(LLaMA-Factory's 'predict' / 'label' are read too)")
        rows.append({"prompt": rec.get("prompt", ""), "reference": ref, "prediction": pred})
    if not rows:
        raise DataFormatError(f"{p}: no prediction rows")
    return rows


def score_file(cfg: Config, path: str | Path) -> tuple[Comparison, dict[str, Path]]:
    """Metrics (and a judge, if configured) for an existing predictions file."""
    rows = read_predictions(path)
    ev = ModelEval(Path(path).stem, score_rows(rows), rows, {"source": str(path)})
    judge = make_judge(cfg)
    if judge is not None:
        judge(ev)
    out_dir = Path(cfg.eval.eval_output_dir) if cfg.eval.eval_output_dir else Path(path).parent
    body = {**ev.metrics, "n": len(rows), "label": ev.label, **ev.info}
    files = {"metrics": write_json(out_dir / f"{ev.label}.metrics.json", body)}
    files |= _write_judge(out_dir, ev)
    return Comparison("file", [ev]), files


def benchmark(cfg: Config, bench_path: str | Path, targets: list[Target] | None = None,
              ) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Path]]:
    """Multiple-choice accuracy of each target (default: the config's model) on a benchmark."""
    import gc

    from tunesmith.eval.benchmarks import load_benchmark, run_benchmark
    from tunesmith.inference.load import load_inference_model

    bench = load_benchmark(bench_path)
    targets = targets or [default_target(cfg)]
    results = []
    for target in targets:
        loaded = load_inference_model(target.cfg)
        results.append((target.label, run_benchmark(loaded, bench, n_shot=cfg.eval.n_shot,
                                                    batch_size=cfg.train.per_device_eval_batch_size)))
        del loaded
        gc.collect()
    out_dir = results_dir(cfg, targets[0] if len(targets) == 1 else None)
    stem = f"benchmark-{slug(bench.name)}-{cfg.eval.n_shot}shot"
    body = {"benchmark": bench.name, "path": str(bench_path), "n_shot": cfg.eval.n_shot,
            "models": [{"label": label, **res} for label, res in results]}
    files = {"benchmark_json": write_json(out_dir / f"{stem}.json", body),
             "benchmark_md": write_text(out_dir / f"{stem}.md", benchmark_markdown(bench.name, cfg.eval.n_shot,
                                                                                   results))}
    return results, files


def benchmark_markdown(name: str, n_shot: int, results: list[tuple[str, dict[str, Any]]]) -> str:
    """Accuracy per subject (rows) and model (columns)."""
    labels = [label for label, _ in results]
    subjects = list(results[0][1]["subjects"]) if results else []
    lines = [f"# Benchmark {name}, {n_shot}-shot", "", "| subject | n | " + " | ".join(labels) + " |",
             "|---|---:|" + "---:|" * len(labels)]
    for s in subjects:
        first = results[0][1]["subjects"][s]
        lines.append(f"| {first['name']} | {first['n']} | "
                     + " | ".join(f"{res['subjects'][s]['accuracy']:.1f}" for _, res in results) + " |")
    lines.append(f"| **overall** | {results[0][1]['n'] if results else 0} | "
                 + " | ".join(f"**{res['accuracy']:.1f}**" for _, res in results) + " |")
    lines += ["", "Accuracy (%) by the likelihood of the option letters A-D; chance is 25."]
    return "\n".join(lines) + "\n"
