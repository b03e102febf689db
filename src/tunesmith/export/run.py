"""The export workflow: reference, merge, quantize, check — and nothing left behind unless it passed.

1. load base + adapter (fp32) and record its greedy answers and logits on held-out prompts;
2. merge the adapter and write the merged folder (sharded safetensors, tokenizer, chat template,
   generation_config.json with every end-of-turn id and the user's sampling defaults);
3. write the quantized artifact asked for (int8 folder, GGUF file, or GPTQ / AWQ on a GPU);
4. load every artifact as a user would and compare it with the reference (see checks.py).

``export_dir`` is checked before any work (export/target.py: a new or empty folder, or an earlier
export when ``overwrite_export_dir`` is set). Everything is written into a new temporary folder beside
it; it becomes ``export_dir`` only when every check passed. A failed check moves it to
``<export_dir>.failed`` with the report, and raises an error saying where the artifacts differ.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.config.schema import Config
from tunesmith.data.registry import load_examples
from tunesmith.export.checks import (
    DEFAULT_PROMPTS,
    ArtifactReport,
    Reference,
    build_reference,
    check_artifact,
    load_folder,
    load_gguf_file,
    merge_tolerance,
)
from tunesmith.export.target import MANIFEST, check_export_dir, publish
from tunesmith.inference.load import Loaded, load_inference_model
from tunesmith.train.resolve import run_settings
from tunesmith.utils.console import console, note_once, status
from tunesmith.utils.errors import ConfigError, TunesmithError
from tunesmith.utils.io import write_json


class ExportCheckError(TunesmithError):
    """An exported artifact does not behave like base + adapter."""

    title = "Export check failed"
    reports: list[ArtifactReport] = []


@dataclass
class ExportResult:
    """Where the export went and how each artifact compared with base + adapter."""

    export_dir: Path
    artifacts: dict[str, str]
    reports: list[ArtifactReport] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.reports)


def check_prompts(cfg: Config) -> list[str]:
    """Held-out prompts: export_check_prompts, else the test split of the config or of the adapter's run."""
    n = cfg.export.export_check_samples
    if cfg.export.export_check_prompts:
        return cfg.export.export_check_prompts[:n]
    names, data_dir = cfg.data.test_dataset, cfg.data.dataset_dir
    if not names and cfg.model.adapter_name_or_path:
        saved = run_settings(cfg.model.adapter_name_or_path)
        names, data_dir = saved.get("test_dataset") or [], saved.get("dataset_dir") or data_dir
    prompts: list[str] = []
    for name in names:
        try:
            examples = load_examples(name, data_dir, n)
        except TunesmithError as exc:  # a moved test set should not block an export, but must be said
            note_once(f"export-prompts:{name}", f"the parity checks cannot read test_dataset '{name}' from "
                      f"{data_dir} ({exc.message}); they use built-in prompts instead (set export_check_prompts, "
                      "or point test_dataset / dataset_dir at the moved file)")
            continue
        prompts += [ex.prompt_messages[-1].content for ex in examples
                    if getattr(ex, "kind", None) == "sft" and ex.prompt_messages]
    return (prompts or DEFAULT_PROMPTS)[:n]


def _saved_dtype(model_path: str) -> str:
    cfg = json.loads((Path(model_path) / "config.json").read_text())
    return str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32")


def _reference(cfg: Config, prompts: list[str]) -> tuple[Loaded, Reference]:
    import torch

    with status("Loading base + adapter (fp32) and recording its answers on the check prompts"):
        loaded = load_inference_model(cfg, dtype=torch.float32)
        ref = build_reference(loaded.model, loaded.tokenizer, loaded.template, loaded.stop_ids, prompts,
                              max_new_tokens=cfg.export.export_check_tokens)
    return loaded, ref


def _image_reference(cfg: Config, loaded: Loaded) -> Any:
    """Base + adapter's answer on the image check prompt (None for text-only models)."""
    from tunesmith.model.vision import is_vision_model, load_processor

    if not is_vision_model(loaded.base_path):
        return None
    if cfg.export.export_quantization != "none":
        raise ConfigError([f"'export_quantization': {cfg.export.export_quantization} is not available for "
                           "vision-language models yet; export the merged model (none)"])
    from tunesmith.export.vision import image_reference

    with status("Recording base + adapter's answer on an image prompt"):
        return image_reference(loaded, load_processor(loaded.base_path), max_new_tokens=cfg.export.export_check_tokens)


def _check_quantizer(cfg: Config) -> None:
    """A k-quant GGUF needs llama.cpp's quantizer: say so before any work, not after the merge."""
    from tunesmith.export.gguf import LLAMA_CPP_QUANTS
    from tunesmith.model import llama_cpp

    q = cfg.export.export_quantization
    if q.removeprefix("gguf-") in LLAMA_CPP_QUANTS and not llama_cpp.available():
        raise ConfigError([f"'export_quantization': {q} is made by llama.cpp's own quantizer, and "
                           "llama-cpp-python is not installed: run 'bash scripts/install_llamacpp.sh' (it builds "
                           "llama.cpp, ~4 min on 2 cores), or choose gguf-q8_0 / gguf-f16, which need nothing"])


def _write_quantized(cfg: Config, merged_dir: Path, loaded: Loaded, prompts: list[str]) -> dict[str, str]:
    """Write the artifact export_quantization asks for; returns {name: path relative to merged_dir}."""
    from tunesmith.export import gguf, quantize

    q = cfg.export.export_quantization
    stem = Path(cfg.export.export_dir or "model").name
    if q == "int8":
        with status("Quantizing to int8 (torchao weight-only)"):
            quantize.write_int8(merged_dir, merged_dir / "int8")
        return {"int8": "int8"}
    if q.startswith("gguf-"):
        qtype = q.removeprefix("gguf-")
        # A folder of its own: beside the merged folder's tokenizer_config.json, transformers would
        # take that file's tokenizer class instead of the GGUF's own tokenizer.
        name = f"gguf/{stem}-{qtype}.gguf"
        (merged_dir / "gguf").mkdir(exist_ok=True)
        if qtype in gguf.LLAMA_CPP_QUANTS:  # f16 by us, then llama.cpp's own quantizer; the f16 file is not kept
            f16 = merged_dir / "gguf" / f".{stem}-f16.gguf"
            with status(f"Writing {name} (f16, then llama.cpp's {qtype} quantizer)"):
                gguf.write_gguf(merged_dir, f16, "f16", stop_ids=loaded.stop_ids, name=stem)
                try:
                    gguf.quantize_with_llama_cpp(f16, merged_dir / name, qtype)
                finally:
                    f16.unlink(missing_ok=True)
            return {q: name}
        with status(f"Writing {name}"):
            gguf.write_gguf(merged_dir, merged_dir / name, qtype, stop_ids=loaded.stop_ids, name=stem)  # type: ignore[arg-type]
        return {q: name}
    if q == "gptq-int4":
        quantize.write_gptq(merged_dir, merged_dir / "gptq-int4", prompts)
        return {}  # GPU-only formats are not loaded back on this machine's CPU path
    if q == "awq-int4":
        quantize.write_awq(merged_dir, merged_dir / "awq-int4", prompts)
        return {}
    return {}


def run_checks(root: Path, artifacts: dict[str, str], loaded: Loaded, ref: Reference, cfg: Config,
               *, dtype: str) -> list[ArtifactReport]:
    """Load each artifact as a user would and compare it with the reference."""
    reports = []
    for name, rel in artifacts.items():
        path = root / rel
        with status(f"Checking {name} against base + adapter"):
            model, tokenizer, eos = load_gguf_file(path) if rel.endswith(".gguf") else load_folder(path)
            report = check_artifact(
                name, rel, model, tokenizer, eos, ref, template=loaded.template, train_tokenizer=loaded.tokenizer,
                exact=name == "merged", tolerance=merge_tolerance(dtype, ref.logit_scale),
                min_agreement=cfg.export.export_min_agreement,
            )
            del model
        reports.append(report)
    return reports


def _fail(reports: list[ArtifactReport], where: Path) -> ExportCheckError:
    lines = [f"{r.name} ({r.path}): " + "; ".join(r.problems) for r in reports if not r.passed]
    error = ExportCheckError(
        "The exported artifacts do not behave like base + adapter:\n  " + "\n  ".join(lines)
        + f"\nArtifacts and report kept in {where} for inspection.",
        hint="a chat-template or stop-id mismatch means the export lost the training format; low agreement "
        "after quantization means this format is too lossy for the model (try gguf-f16 or no quantization)",
    )
    error.reports = reports
    return error


def run_export(cfg: Config) -> ExportResult:
    """Merge, quantize, write and check; returns the result (raises ExportCheckError on a mismatch)."""
    from tunesmith.export.merge import write_merged
    from tunesmith.model.adapters import merge_adapter

    target = check_export_dir(cfg)  # before any work: refuses a folder holding anything but an earlier export
    _check_quantizer(cfg)
    out = target.out
    started = time.time()
    prompts = check_prompts(cfg)
    loaded, ref = _reference(cfg, prompts)
    image_ref = _image_reference(cfg, loaded)  # vision models: recorded before the merge changes the weights
    dtype = _saved_dtype(loaded.base_path)
    tmp = target.partial()
    try:
        with status(f"Merging and writing {out}"):
            import torch

            merged = merge_adapter(loaded.model)
            if dtype in ("bfloat16", "float16"):
                merged = merged.to(getattr(torch, dtype))
            weights = write_merged(merged, loaded.tokenizer, loaded.template, tmp,
                                   shard_gb=cfg.export.export_size, gen=cfg.eval)
            del merged
            if image_ref is not None:
                from tunesmith.export.vision import write_processor_files

                write_processor_files(loaded.base_path, tmp)
        artifacts = {"merged": ".", **_write_quantized(cfg, tmp, loaded, prompts)}
        reports = run_checks(tmp, artifacts, loaded, ref, cfg, dtype=dtype)
        if image_ref is not None:
            from tunesmith.export.vision import check_image_prompt

            with status("Checking the merged model on an image prompt"):
                reports.append(check_image_prompt(tmp, image_ref, loaded.stop_ids,
                                                  tolerance=merge_tolerance(dtype, ref.logit_scale)))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # the folder this export made, never an existing one
        raise
    manifest = {
        "model_name_or_path": cfg.model.model_name_or_path, "base_path": loaded.base_path,
        "adapter_name_or_path": loaded.adapter_path, "template": loaded.template.name,
        "export_quantization": cfg.export.export_quantization, "dtype": dtype, "weights": weights,
        "artifacts": artifacts, "check_prompts": prompts, "stop_ids": loaded.stop_ids,
        "checks": [r.to_dict() for r in reports], "seconds": round(time.time() - started, 1),
    }
    write_json(tmp / MANIFEST, manifest)
    result = ExportResult(out, artifacts, reports, manifest)
    where = publish(tmp, target, passed=result.passed)
    if not result.passed:
        raise _fail(reports, where)
    return result


def check_existing(cfg: Config) -> ExportResult:
    """``export --check-only``: run the same checks on the artifacts already in export_dir."""
    if not cfg.export.export_dir:
        raise ConfigError(["'export_dir': which export should be checked? e.g. export_dir=saves/my-model-export"])
    out = Path(cfg.export.export_dir)
    path = out / MANIFEST
    if not path.exists():
        raise ConfigError([f"'export_dir': {str(out)!r} has no {MANIFEST}; it was not written by tunesmith export"])
    manifest = json.loads(path.read_text())
    updates: dict[str, Any] = {"adapter_name_or_path": manifest.get("adapter_name_or_path"),
                               "template": manifest.get("template", "auto")}
    if cfg.model.model_name_or_path == Config().model.model_name_or_path:
        updates["model_name_or_path"] = manifest.get("model_name_or_path")
    model_args = cfg.model.model_copy(update={k: v for k, v in updates.items() if v is not None})
    export_args = cfg.export.model_copy(update={"export_check_prompts": cfg.export.export_check_prompts
                                                or manifest.get("check_prompts", [])})
    cfg = cfg.model_copy(update={"model": model_args, "export": export_args})
    artifacts = {k: v for k, v in manifest.get("artifacts", {"merged": "."}).items() if (out / v).exists()}
    loaded, ref = _reference(cfg, check_prompts(cfg))
    reports = run_checks(out, artifacts, loaded, ref, cfg, dtype=manifest.get("dtype", "float32"))
    result = ExportResult(out, artifacts, reports, manifest)
    if not result.passed:
        raise _fail(reports, out)
    return result


def print_reports(reports: list[ArtifactReport]) -> None:
    from rich.table import Table

    table = Table(title="Parity with base + adapter on the held-out prompts", title_justify="left")
    for col in ("artifact", "template", "stop ids", "greedy same", "token agreement", "max |Δlogit|", "result"):
        table.add_column(col, justify="left" if col in ("artifact", "result") else "right")
    for r in reports:
        table.add_row(r.name, "ok" if r.template_ok else "[red]differs[/red]",
                      "ok" if r.stop_ids_ok else "[red]missing[/red]", r.greedy_exact, f"{r.token_agreement:.1%}",
                      f"{r.max_logit_diff:.2g}", "[green]pass[/green]" if r.passed else "[red]FAIL[/red]")
    console.print(table)
