"""tunesmith eval on the tiny model: files, numbers that match compute_metrics and a by-hand
perplexity, generation-setting precedence, model choice, compare reports, scoring a file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from tunesmith.cli.main import app
from tunesmith.config import load_config
from tunesmith.eval.compare import Comparison, verdicts
from tunesmith.eval.evaluate import (
    ModelEval,
    compare_targets,
    default_target,
    load_eval_examples,
    results_dir,
)
from tunesmith.eval.generation import generation_settings
from tunesmith.eval.metrics import compute_metrics
from tunesmith.eval.report import html_page, markdown
from tunesmith.utils.errors import DataFormatError, ModelLoadError

runner = CliRunner()


@pytest.fixture
def eval_overrides(tiny_model_dir: Path, dataset_dir: Path, tmp_path: Path) -> dict:
    return {"model_name_or_path": str(tiny_model_dir), "template": "gemma", "dataset_dir": str(dataset_dir),
            "dataset": "toy_train", "test_dataset": "toy_test", "output_dir": str(tmp_path / "run"),
            "bf16": False, "max_new_tokens": 6, "cutoff_len": 128}


@pytest.fixture
def tiny_run(tiny_train_overrides: dict) -> Path:
    """A finished LoRA run on the tiny model (a few steps)."""
    from tunesmith.train.sft import run_sft

    return run_sft(load_config(None, {**tiny_train_overrides, "max_steps": 4})).output_dir


def _args(overrides: dict) -> list[str]:
    return [f"{k}={v}" for k, v in overrides.items()]


def test_eval_writes_predictions_and_metrics_matching_compute_metrics(eval_overrides: dict) -> None:
    result = runner.invoke(app, ["eval", *_args(eval_overrides)], terminal_width=200)
    assert result.exit_code == 0, result.output
    out = Path(eval_overrides["output_dir"]) / "eval"  # no finished run there: the base model, output_dir/eval
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all({"prompt", "reference", "prediction"} <= set(r) for r in rows)
    assert rows[0]["reference"] == "biology"  # toy_test starts at alpaca_rows[4]
    metrics = json.loads((out / "metrics.json").read_text())
    expected = compute_metrics([r["prediction"] for r in rows], [r["reference"] for r in rows])
    for key in ("rouge-1", "rouge-2", "rouge-l", "bleu-4", "exact_match", "rouge-l>=0.99", "similarity"):
        assert metrics[key] == pytest.approx(expected[key], abs=1e-3), key
    assert metrics["perplexity"] > 1 and metrics["n"] == 4 and metrics["split"] == "test"
    assert metrics["generation"]["max_new_tokens"] == 6
    assert (out / "report.html").exists() and (out / "report.md").exists()
    assert "rouge-l" in result.output and "perplexity" in result.output


def test_reference_perplexity_equals_a_by_hand_full_logits_computation(eval_overrides: dict) -> None:
    import torch

    from tunesmith.data.tokenize import encode_sft
    from tunesmith.eval.perplexity import reference_perplexity
    from tunesmith.inference.load import load_inference_model

    cfg = load_config(None, eval_overrides)
    examples = load_eval_examples(cfg)
    loaded = load_inference_model(cfg)
    nll, count = 0.0, 0
    for ex in examples:  # one at a time, full-vocabulary logits, no padding: the textbook way
        enc, _ = encode_sft(ex, loaded.template, loaded.tokenizer, 128, mask_history=True)
        ids, labels = torch.tensor([enc.input_ids]), torch.tensor(enc.labels[1:])
        with torch.no_grad():
            logits = loaded.model(input_ids=ids).logits[0, :-1].float()
        keep = labels != -100
        nll += torch.nn.functional.cross_entropy(logits[keep], labels[keep], reduction="sum").item()
        count += int(keep.sum())
    assert count > len(examples)  # the answer and its end-of-turn marker
    ppl = reference_perplexity(loaded, examples, cutoff_len=128, batch_size=3)
    assert ppl == pytest.approx(math.exp(nll / count), rel=1e-4)


def test_generation_settings_config_then_model_then_default(eval_overrides: dict) -> None:
    from transformers import GenerationConfig

    model = SimpleNamespace(generation_config=GenerationConfig(do_sample=True, temperature=0.7, top_k=40))
    cfg = load_config(None, {**eval_overrides, "top_k": 5})  # max_new_tokens and top_k set by the user
    settings, source = generation_settings(cfg, model)
    assert (settings.max_new_tokens, settings.top_k, settings.temperature, settings.top_p) == (6, 5, 0.7, 1.0)
    assert source == {"max_new_tokens": "config", "temperature": "model", "top_p": "default", "top_k": "config",
                      "repetition_penalty": "default"}
    greedy = SimpleNamespace(generation_config=GenerationConfig(do_sample=False))
    assert generation_settings(cfg, greedy)[0].temperature == 0.0


def test_default_target_is_the_finished_run_in_output_dir(eval_overrides: dict, tiny_run: Path) -> None:
    cfg = load_config(None, {**eval_overrides, "output_dir": str(tiny_run)})
    target = default_target(cfg)
    assert target.adapter == str(tiny_run)
    assert results_dir(cfg, target) == tiny_run / "eval"
    explicit = load_config(None, {**eval_overrides, "eval_output_dir": "/tmp/x"})
    assert results_dir(explicit) == Path("/tmp/x")


def test_compare_targets(eval_overrides: dict, tiny_run: Path) -> None:
    cfg = load_config(None, eval_overrides)
    both = compare_targets(cfg, f"base,{tiny_run}")
    assert [t.label for t in both] == ["base", str(tiny_run)] and both[0].adapter is None
    alone = compare_targets(load_config(None, {**eval_overrides, "adapter_name_or_path": str(tiny_run)}), "base")
    assert [t.label for t in alone] == [str(tiny_run), "base"]  # one name: compared with the config's model
    with pytest.raises(ModelLoadError, match="neither 'base' nor a folder"):
        compare_targets(cfg, "base,no/such/run")


def test_empty_split_is_a_clear_error(eval_overrides: dict) -> None:
    cfg = load_config(None, {**eval_overrides, "eval_split": "val"})
    with pytest.raises(DataFormatError, match="'val' split"):
        load_eval_examples(cfg)


def _model_eval(label: str, rl: list[float], ppl: float) -> ModelEval:
    rows = [{"prompt": f"q{i}", "reference": "数学", "prediction": f"{label}-{i}", "scores": {"rouge-l": v}}
            for i, v in enumerate(rl)]
    metrics = {"rouge-l": sum(rl) / len(rl), "exact_match": sum(v == 100 for v in rl) * 100 / len(rl),
               "perplexity": ppl}
    return ModelEval(label, metrics, rows, {"generation": {"temperature": 0.0, "max_new_tokens": 8}})


def test_verdict_says_plainly_when_tuned_is_worse_than_base() -> None:
    cmp = Comparison("test", [_model_eval("base", [100, 100, 0], 3.0), _model_eval("saves/bad", [0, 100, 0], 5.0)])
    text = verdicts(cmp)
    assert len(text) == 1 and text[0].startswith("WORSE THAN BASE: saves/bad")
    assert "data or hyper-parameters are wrong" in text[0] and "perplexity" in text[0]
    good = Comparison("test", [_model_eval("base", [0, 0, 0], 3.0), _model_eval("saves/good", [100, 100, 0], 1.5)])
    assert verdicts(good)[0].startswith("BETTER THAN BASE: saves/good") and "3 of 3 metrics" in verdicts(good)[0]


def test_reports_are_self_contained_and_show_the_differing_examples() -> None:
    cmp = Comparison("test", [_model_eval("base", [100, 0, 50], 3.0), _model_eval("tuned", [100, 100, 50], 1.2)])
    refs = ["数学"] * 3
    page = html_page(cmp, refs)
    assert page.count("<svg") == 3  # one chart per metric
    assert "<script" not in page and "http" not in page  # nothing loaded from elsewhere
    assert "BETTER THAN BASE" in page and "tuned-1" in page
    md = markdown(cmp, refs)
    assert md.index("tuned-1") < md.index("tuned-0")  # example 1 (0 vs 100) differs most
    assert "Short, exact answers" in md  # the notes' reading guide for one-word references


def test_compare_cli_writes_reports_for_every_model(eval_overrides: dict, tiny_run: Path) -> None:
    args = ["eval", "--compare", f"base,{tiny_run}", *_args(eval_overrides)]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    out = Path(eval_overrides["output_dir"]) / "eval"
    data = json.loads((out / "compare.json").read_text())
    assert [m["label"] for m in data["models"]] == ["base", str(tiny_run)]
    assert data["verdicts"] and data["n"] == 4
    for sub in ("base", str(tiny_run).strip("/").replace("/", "_")):
        assert (out / "compare" / sub / "predictions.jsonl").exists(), sub
    assert (out / "compare.html").read_text().count("<svg") == 8
    assert "THAN BASE" in result.output or "NO GAIN" in result.output


def test_predictions_file_is_scored_without_a_model(tmp_path: Path, cli) -> None:  # noqa: ANN001
    path = tmp_path / "generated_predictions.jsonl"
    rows = [{"prompt": "p", "label": "数学", "predict": "数学"},
            {"prompt": "q", "label": "the cat", "predict": "a dog"}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    result = runner.invoke(app, ["eval", "--predictions", str(path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "generated_predictions.metrics.json").read_text())
    assert metrics["exact_match"] == 50.0 and metrics["rouge-l"] == 50.0 and "perplexity" not in metrics
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p"}\n')
    refused = cli("eval", "--predictions", str(bad))
    assert refused.code == 2 and "Traceback" not in refused.err
    assert "bad.jsonl:1: needs string fields 'prediction' and 'reference'" in refused.err_text
    assert not (tmp_path / "bad.metrics.json").exists()
