"""``tunesmith eval``: answer a split with a model, score every answer, write the results.

Reads top to bottom: choose the model (the config's adapter, else the finished run in output_dir,
else the base model), load the split, generate in batches, score (text metrics, similarity,
perplexity of the references, optionally an LLM judge), write ``predictions.jsonl`` and
``metrics.json``. ``--compare`` runs the same for several models (``compare.py``).
"""

from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.config.schema import DEFAULT_MODEL, Config
from tunesmith.data.records import SFTExample
from tunesmith.eval.generation import describe_settings, generation_settings, predict
from tunesmith.eval.metrics import mean_scores, score_pair
from tunesmith.eval.perplexity import reference_perplexity
from tunesmith.inference.load import load_inference_model
from tunesmith.train.data import load_splits
from tunesmith.train.resolve import RUN_CONFIG, run_settings
from tunesmith.utils.console import console
from tunesmith.utils.errors import DataFormatError, ModelLoadError
from tunesmith.utils.io import write_json, write_jsonl

BASE = "base"


@dataclass
class Target:
    """One model to score: a label for tables and reports, and the config that loads it."""

    label: str
    cfg: Config

    @property
    def adapter(self) -> str | None:
        return self.cfg.model.adapter_name_or_path


def is_finished_run(path: str | Path) -> bool:
    """A folder written by 'tunesmith train' (its resolved config plus an adapter or weights)."""
    p = Path(path)
    has_weights = (p / "adapter_config.json").exists() or (p / "config.json").exists()
    return (p / RUN_CONFIG).exists() and has_weights


def _with_adapter(cfg: Config, adapter: str | None) -> Config:
    out = cfg.model_copy(deep=True)
    out.model.adapter_name_or_path = adapter
    return out


def default_target(cfg: Config) -> Target:
    """The config's adapter; else the finished run in output_dir (so the training config evaluates
    what it trained); else the base model."""
    if cfg.model.adapter_name_or_path:
        return Target(cfg.model.adapter_name_or_path, cfg)
    if is_finished_run(cfg.train.output_dir):
        return Target(cfg.train.output_dir, _with_adapter(cfg, cfg.train.output_dir))
    return Target(f"{BASE} ({cfg.model.model_name_or_path})", cfg)


def base_target(cfg: Config) -> Target:
    """The base model under the config's model or run, without any adapter."""
    run = default_target(cfg).adapter
    out = _with_adapter(cfg, None)
    saved = run_settings(run).get("model_name_or_path") if run else None
    if saved and out.model.model_name_or_path == DEFAULT_MODEL:
        out.model.model_name_or_path = saved  # the base that run was trained from
    if out.model.template == "auto" and run:
        out.model.template = run_settings(run).get("template", "auto")  # same prompts as the tuned model
    return Target(BASE, out)


def compare_targets(cfg: Config, spec: str) -> list[Target]:
    """Models named by ``--compare``: 'base' or run/adapter folders, comma-separated. One name alone
    is compared with the config's own model."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ModelLoadError("--compare names no model", hint="e.g. --compare base,saves/quickstart")
    targets = []
    for name in names:
        if name == BASE:
            targets.append(base_target(cfg))
        elif not Path(name).is_dir():
            raise ModelLoadError(f"--compare: {name!r} is neither 'base' nor a folder",
                                 hint="name 'base' and/or run folders (a training output_dir), comma-separated")
        else:
            targets.append(Target(name, _with_adapter(cfg, name)))
    if len(targets) == 1:
        own = default_target(cfg)
        own = base_target(cfg) if own.adapter is None else own
        if own.adapter != targets[0].adapter:
            targets.insert(0, own)
    return targets


def results_dir(cfg: Config, target: Target | None = None) -> Path:
    """eval_output_dir, else <evaluated run>/eval, else <output_dir>/eval."""
    if cfg.eval.eval_output_dir:
        return Path(cfg.eval.eval_output_dir)
    run = (target or default_target(cfg)).adapter
    return Path(run or cfg.train.output_dir) / "eval"


def load_eval_examples(cfg: Config) -> list[SFTExample]:
    """The eval_split of the config's data (at most eval_samples examples)."""
    split = cfg.eval.eval_split
    examples = [e for e in getattr(load_splits(cfg), split) if isinstance(e, SFTExample)]
    if any(e.images or e.videos for e in examples):  # image datasets: paths resolved and checked first
        from tunesmith.data.media import check_media, resolve_media

        check_media(resolve_media(examples, cfg.data.media_folder), name=f"the '{split}' split")
    if not examples:
        raise DataFormatError(
            f"the '{split}' split of {', '.join(cfg.data.dataset) or 'the data'} has no instruction examples",
            hint="set test_dataset (or test_size) for the test split, or eval_split=val / eval_split=train",
        )
    return examples[:cfg.eval.eval_samples] if cfg.eval.eval_samples else examples


def prompt_fields(example: SFTExample) -> dict[str, Any]:
    """How an example's prompt is shown in predictions.jsonl and reports."""
    msgs = example.prompt_messages
    out: dict[str, Any] = {"prompt": msgs[-1].content if msgs else ""}
    if example.images:
        out["images"] = list(example.images)
    if example.system:
        out["system"] = example.system
    if len(msgs) > 1:
        out["history"] = [{"role": m.role, "content": m.content} for m in msgs[:-1]]
    return out


def score_rows(rows: list[dict[str, Any]], *, similarity: bool = True) -> dict[str, float]:
    """Add per-example scores to rows (each with 'prediction' and 'reference'); return the means.
    The same numbers as ``compute_metrics`` over the two columns."""
    scores = [score_pair(r["prediction"], r["reference"]) for r in rows]
    if similarity and rows:
        from tunesmith.eval.similarity import similarities

        sims = similarities([r["prediction"] for r in rows], [r["reference"] for r in rows])
        for s, sim in zip(scores, sims):
            s["similarity"] = 100 * sim
    for row, s in zip(rows, scores):
        row["scores"] = {k: round(v, 4) for k, v in s.items()}
    return mean_scores(scores)


@dataclass
class ModelEval:
    """One model's answers and scores on one split."""

    label: str
    metrics: dict[str, Any]
    rows: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)


def evaluate_target(cfg: Config, target: Target, examples: list[SFTExample]) -> ModelEval:
    """Load the model, answer every example, score the answers and the references' perplexity."""
    import torch

    started = time.time()
    loaded = load_inference_model(target.cfg)
    settings, source = generation_settings(cfg, loaded.model)
    console.print(f"[bold]{target.label}[/bold]: {len(examples)} examples, {describe_settings(settings, source)}")
    torch.manual_seed(cfg.train.seed)  # sampled answers repeat run to run
    processor = _processor(cfg, loaded.base_path, examples)
    predictions = predict(loaded, examples, settings, cfg.train.per_device_eval_batch_size,
                          f"generate ({target.label})", processor=processor)
    # Perplexity needs the pictures in the forward pass; it is measured on the text-only examples.
    text_only = [e for e in examples if not (e.images or e.videos)]
    ppl = reference_perplexity(loaded, text_only, cutoff_len=cfg.data.cutoff_len,
                               batch_size=cfg.train.per_device_eval_batch_size) if text_only else None
    info = {"model": loaded.base_path, "adapter": loaded.adapter_path, "template": loaded.template.name,
            "generation": asdict(settings)}
    del loaded
    gc.collect()
    rows = [{**prompt_fields(e), "reference": e.response, "prediction": p} for e, p in zip(examples, predictions)]
    metrics = score_rows(rows)
    metrics["perplexity"] = round(ppl, 4) if ppl is not None else None
    info["seconds"] = round(time.time() - started, 1)
    return ModelEval(target.label, metrics, rows, info)


def _processor(cfg: Config, model_path: str, examples: list[SFTExample]) -> Any:
    """A vision model's processor when the examples carry images (None otherwise)."""
    if not any(e.images or e.videos for e in examples):
        return None
    from tunesmith.model.vision import is_vision_model, load_processor

    if not is_vision_model(model_path):
        raise DataFormatError(f"the examples carry images, but {model_path} is a text-only model",
                              hint="evaluate a vision-language model, or data without images")
    return load_processor(model_path, cfg.data)


def write_results(out_dir: Path, ev: ModelEval, split: str) -> dict[str, Path]:
    """predictions.jsonl (prompt, reference, prediction, per-example scores) and metrics.json."""
    files = {"predictions": write_jsonl(out_dir / "predictions.jsonl", ev.rows)}
    body = {**ev.metrics, "n": len(ev.rows), "split": split, "label": ev.label, **ev.info}
    files["metrics"] = write_json(out_dir / "metrics.json", body)
    return files
