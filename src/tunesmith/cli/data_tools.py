"""``tunesmith data stats | dedupe | convert | augment | overlap``: dataset tools from the notes.

They join the ``data`` group of cli/data.py. Every tool reads a file (or a dataset_info.json name),
validates every record first, and writes its output atomically in the input's file format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tunesmith.cli.data import data_app
from tunesmith.utils.console import console

DatasetDir = Annotated[Path, typer.Option(help="Folder with dataset_info.json (for registry names).")]
Part = Annotated[str, typer.Option("--by", help="Compare the prompt (user turns), the response, or the full example.")]


def _read(name: str, dataset_dir: Path) -> tuple[Path, list[Any], list[Any]]:
    """(file, raw records, canonical examples) of a file or registry name; records and examples align."""
    from tunesmith.data.formats import convert_records
    from tunesmith.data.readers import read_records
    from tunesmith.data.registry import resolve_dataset

    spec = resolve_dataset(name, dataset_dir)
    raws = read_records(spec.path)
    examples = convert_records(raws, formatting=spec.formatting, ranking=spec.ranking, columns=spec.columns)
    return spec.path, raws, examples


def _beside(path: Path, tag: str, out: Path | None) -> Path:
    return out or path.with_name(f"{path.stem}.{tag}{path.suffix}")


def _check_part(part: str) -> str:
    from tunesmith.utils.errors import ConfigError

    if part not in ("prompt", "response", "full"):
        raise ConfigError([f"--by {part!r}: use prompt, response or full"])
    return part


STATS_HELP = """Statistics of datasets: size, token lengths, duplicates, instruction variety.

Per file: examples, turns, system prompts, token lengths of whole examples and of answers (with the
model's tokenizer), examples over cutoff_len, exact and near duplicates, how many examples share the
most common instruction phrasing, and the share of Chinese text.

Examples:

  tunesmith data stats examples/data/subjects.train.json

  tunesmith data stats subjects_train subjects_test --dataset-dir examples/data --json stats.json
"""


@data_app.command("stats", help=STATS_HELP)
def stats(
    datasets: Annotated[list[str], typer.Argument(help="Files or registry names (one row each).")],
    dataset_dir: DatasetDir = Path("."),
    model: Annotated[str, typer.Option(help="Model whose tokenizer counts tokens.")] = "gemma-3-270m",
    template: Annotated[str, typer.Option(help="Chat template (auto picks by model).")] = "auto",
    cutoff_len: Annotated[int, typer.Option(help="Count examples longer than this.")] = 1024,
    threshold: Annotated[float, typer.Option(help="Near-duplicate Jaccard threshold.")] = 0.85,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the statistics as JSON.")] = None,
) -> None:
    loaded = {name: _read(name, dataset_dir)[2] for name in datasets}
    from rich.table import Table

    from tunesmith.advise.profile import template_share
    from tunesmith.data.augment import has_cjk
    from tunesmith.data.checks import check_examples
    from tunesmith.data.dedupe import example_text, find_duplicates
    from tunesmith.data.templates import get_template
    from tunesmith.model.load import load_tokenizer, resolve_model_path

    path = resolve_model_path(model)
    tok = load_tokenizer(path)
    config_json = Path(path) / "config.json"
    model_type = json.loads(config_json.read_text()).get("model_type") if config_json.exists() else None
    tmpl = get_template(template, model_type, tok)
    table = Table(title=f"Dataset statistics · tokenizer {model} · cutoff_len {cutoff_len}", title_justify="left")
    for col in ("dataset", "format", "examples", "turns", "system", "tokens p50/max", "answer p50/max",
                "over cutoff", "dup exact/near", "top phrasing", "Chinese"):
        table.add_column(col, justify="left" if col in ("dataset", "format") else "right")
    out = []
    for name, examples in loaded.items():
        report = check_examples(name, examples, tmpl, tok, cutoff_len)
        answers = sorted(len(tok.encode(example_text(e, "response"), add_special_tokens=False)) for e in examples)
        lengths = sorted(report.lengths)
        dupes = find_duplicates([example_text(e) for e in examples], threshold=threshold)
        share, top, distinct = template_share(examples)
        turns = [sum(1 for m in getattr(e, "messages", []) if m.role == "user") for e in examples]
        row = {
            "dataset": name, "format": report.kind, "examples": len(examples),
            "user_turns_mean": round(sum(turns) / max(1, len(turns)), 2),
            "system_share": round(sum(1 for e in examples if getattr(e, "system", None)) / max(1, len(examples)), 3),
            "tokens_p50": _mid(lengths), "tokens_max": lengths[-1] if lengths else 0,
            "answer_tokens_p50": _mid(answers), "answer_tokens_max": answers[-1] if answers else 0,
            "loss_token_share": round(report.loss_share, 4), "over_cutoff": report.n_over_cutoff,
            "exact_duplicates": dupes.n_exact, "near_duplicates": dupes.n_near, "distinct_phrasings": distinct,
            "top_phrasing_share": round(share, 3), "top_phrasing": top,
            "chinese_share": round(sum(1 for e in examples if has_cjk(example_text(e))) / max(1, len(examples)), 3),
        }
        out.append(row)
        table.add_row(name, row["format"], str(row["examples"]), f"{row['user_turns_mean']:g}",
                      f"{100 * row['system_share']:.0f}%", f"{row['tokens_p50']}/{row['tokens_max']}",
                      f"{row['answer_tokens_p50']}/{row['answer_tokens_max']}", _flag(row["over_cutoff"], "red"),
                      _flag(row["exact_duplicates"], "yellow") + "/" + _flag(row["near_duplicates"], "yellow"),
                      f"{100 * share:.0f}% of {distinct}" if share <= 0.3 else f"[yellow]{100 * share:.0f}%[/yellow]",
                      f"{100 * row['chinese_share']:.0f}%")
    console.print(table)
    for row in out:
        if row["top_phrasing_share"] > 0.3:
            console.print(f"[yellow]{row['dataset']}: {100 * row['top_phrasing_share']:.0f}% of examples share the "
                          f"phrasing {row['top_phrasing']!r}[/yellow]: vary it (tunesmith data augment --paraphrase).")
    if json_out:
        from tunesmith.utils.io import write_json

        write_json(json_out, {"model": model, "cutoff_len": cutoff_len, "datasets": out})


def _mid(values: list[int]) -> int:
    return values[len(values) // 2] if values else 0


def _flag(n: int, color: str) -> str:
    return f"[{color}]{n}[/{color}]" if n else "0"


DEDUPE_HELP = """Remove exact and near-duplicate examples (keeps the first of each group).

Exact duplicates match after folding case, width and punctuation; near duplicates have a Jaccard
similarity of character 5-grams at or above --threshold (MinHash-LSH, fast on tens of thousands of
examples). Writes NAME.dedup.EXT beside the input unless --out is given, and lists what it removed.

Examples:

  tunesmith data dedupe data/train.jsonl

  tunesmith data dedupe data/train.json --threshold 0.9 --by prompt --out data/train.clean.json
"""


@data_app.command("dedupe", help=DEDUPE_HELP)
def dedupe(
    file: Annotated[str, typer.Argument(help="A data file or registry name.")],
    dataset_dir: DatasetDir = Path("."),
    out: Annotated[Path | None, typer.Option(help="Output file (default: NAME.dedup.EXT).")] = None,
    threshold: Annotated[float, typer.Option(help="Near-duplicate Jaccard threshold (0-1].")] = 0.85,
    exact_only: Annotated[bool, typer.Option("--exact-only", help="Only exact duplicates.")] = False,
    by: Part = "full",
    show: Annotated[int, typer.Option(help="How many removed examples to list.")] = 10,
) -> None:
    from tunesmith.data.dedupe import example_text, find_duplicates
    from tunesmith.data.writers import write_records

    path, raws, examples = _read(file, dataset_dir)
    result = find_duplicates([example_text(e, _check_part(by)) for e in examples], threshold=threshold,
                             near=not exact_only)
    target = _beside(path, "dedup", out)
    write_records(target, [raws[i].data for i in result.kept])
    console.print(f"{len(examples)} examples: kept [bold]{len(result.kept)}[/bold], removed {result.n_exact} exact "
                  f"and {result.n_near} near duplicates (threshold {threshold}) → {target}")
    listed = 0
    for group in result.groups:
        for i, sim, kind in group.duplicates:
            if listed >= show:
                break
            console.print(f"  [dim]{kind} {sim:.2f}[/dim] {raws[i].origin} duplicates {raws[group.keep].origin}: "
                          f"{example_text(examples[i], by)[:70]!r}")
            listed += 1


CONVERT_HELP = """Convert a dataset to another shape: alpaca, sharegpt, messages, preference, preference-qa, kto.

Within a kind nothing is lost. Across kinds only defined mappings: preference -> SFT keeps the chosen
answer, preference -> kto makes a true and a false item per pair, kto -> SFT keeps true items,
kto -> preference pairs a true and a false answer to the same prompt. SFT has no rejected answers or
labels, so SFT -> preference/kto is refused. Writes NAME.SHAPE.EXT unless --out is given (the output's
extension picks JSON, JSONL, CSV or Parquet).

Examples:

  tunesmith data convert examples/data/subjects.train.json --to sharegpt

  tunesmith data convert pairs.json --to kto --out pairs.kto.jsonl
"""


@data_app.command("convert", help=CONVERT_HELP)
def convert(
    file: Annotated[str, typer.Argument(help="A data file or registry name.")],
    to: Annotated[str, typer.Option("--to", help="Target shape.")],
    dataset_dir: DatasetDir = Path("."),
    out: Annotated[Path | None, typer.Option(help="Output file (default: NAME.SHAPE.EXT).")] = None,
) -> None:
    from tunesmith.data.convert import convert_examples
    from tunesmith.data.writers import write_records

    path, _, examples = _read(file, dataset_dir)
    result = convert_examples(examples, to)
    target = _beside(path, to, out)
    write_records(target, result.rows)
    console.print(f"{len(examples)} {examples[0].kind if examples else ''} examples → [bold]{len(result.rows)}[/bold] "
                  f"{to} rows → {target}")
    for note in result.notes:
        console.print(f"  [dim]{note}[/dim]")


AUGMENT_HELP = """Expand a dataset with the notes' corpus-expansion ideas (扩充语料).

  --reverse     swap question and answer into a reverse task (Q&A交换); label-like answers are skipped
  --judge       true/false judgement items: each answer judged correct, another example's answer incorrect
  --system TEXT add a role / system prompt (调整角色设定): copies with it (--system-mode add) or all (set)
  --paraphrase  rewrite the instruction line (the first line of the prompt) from paraphrase templates
                (--templates FILE, one per line, {instruction} = the original) or from a model (--model)

With --model the paraphrases come from a local model (bundled name, folder or .gguf; --adapter for a
tuned one) or, with --endpoint, from any OpenAI-compatible server. Answers are cached in a JSON file
keyed by model and prompt (--cache), so running the command again asks the model nothing.

--replace makes the paraphrases replace the originals (same size, varied phrasing) instead of adding
copies. The output keeps the input's shape and file format (NAME.augmented.EXT unless --out).

Examples:

  tunesmith data augment data/train.json --reverse --judge

  tunesmith data augment data/train.json --paraphrase --templates my_templates.txt --replace

  tunesmith data augment data/train.json --paraphrase --model Qwen/Qwen2.5-7B-Instruct \\
      --endpoint http://127.0.0.1:8000/v1 --copies 2

  tunesmith data augment data/train.json --system "你是一位资深的电力系统分析师。"
"""


@data_app.command("augment", help=AUGMENT_HELP)
def augment(
    file: Annotated[str, typer.Argument(help="A data file or registry name (SFT data).")],
    dataset_dir: DatasetDir = Path("."),
    out: Annotated[Path | None, typer.Option(help="Output file (default: NAME.augmented.EXT).")] = None,
    reverse: Annotated[bool, typer.Option("--reverse", help="Add answer -> question items.")] = False,
    judge: Annotated[bool, typer.Option("--judge", help="Add true/false judgement items.")] = False,
    system: Annotated[str | None, typer.Option(help="A role / system prompt to add.")] = None,
    system_mode: Annotated[str, typer.Option(help="add: copies with the system prompt; set: all examples.")] = "add",
    paraphrase: Annotated[bool, typer.Option("--paraphrase", help="Rewrite instruction lines.")] = False,
    templates: Annotated[Path | None, typer.Option(help="Paraphrase templates, one per line.")] = None,
    copies: Annotated[int, typer.Option(help="Paraphrased copies per example.")] = 1,
    replace: Annotated[bool, typer.Option("--replace", help="Paraphrases replace the originals.")] = False,
    model: Annotated[str | None, typer.Option(help="Model to ask for paraphrases.")] = None,
    endpoint: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
                        ] = None,
    api_key: Annotated[str | None, typer.Option(envvar="OPENAI_API_KEY", help="API key for --endpoint.")] = None,
    adapter: Annotated[Path | None, typer.Option(help="A trained adapter for a local --model.")] = None,
    n: Annotated[int, typer.Option(help="Paraphrases asked per instruction.")] = 3,
    cache: Annotated[Path | None, typer.Option(help="Paraphrase cache (default: ~/.cache/tunesmith/paraphrases.json)")
                     ] = None,
    min_answer_chars: Annotated[int, typer.Option(help="--reverse skips shorter answers.")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
) -> None:
    from tunesmith.data import augment as aug
    from tunesmith.data.convert import convert_examples, source_shape
    from tunesmith.data.writers import write_records
    from tunesmith.utils.errors import ConfigError

    if not (reverse or judge or system or paraphrase):
        raise ConfigError(["nothing to do: choose --reverse, --judge, --system TEXT and/or --paraphrase"])
    if system_mode not in ("add", "set"):
        raise ConfigError([f"--system-mode {system_mode!r}: use add or set"])
    path, raws, examples = _read(file, dataset_dir)
    sft = [e for e in examples if e.kind == "sft"]
    if not sft:
        raise ConfigError([f"{path}: augment works on SFT data (instructions/conversations); this file is "
                           f"{examples[0].kind if examples else 'empty'}"])
    shape = source_shape(raws[0].data, "sft")
    base = list(sft)
    added: list[Any] = []
    notes: list[str] = []
    if system and system_mode == "set":
        base = aug.with_system(base, system, mode="set").examples
    elif system:
        added += aug.with_system(base, system).examples
    if paraphrase:
        variants = _variants(base, templates, model, endpoint, api_key, adapter, n, cache, replace)
        result = aug.paraphrase_instructions(base, variants, seed=seed, copies=copies, replace_original=replace)
        if replace:
            base = result.examples
        else:
            added += result.examples
    for enabled, make in ((reverse, lambda: aug.reverse_examples(base, min_answer_chars=min_answer_chars)),
                          (judge, lambda: aug.judgement_examples(base, seed=seed))):
        if enabled:
            result = make()
            added += result.examples
            notes += result.notes
    keep_raw = not (replace and paraphrase) and not (system and system_mode == "set")
    rows = [r.data for r, e in zip(raws, examples) if e.kind == "sft"] if keep_raw else \
        convert_examples(base, shape).rows
    rows += convert_examples(added, shape).rows if added else []
    target = _beside(path, "augmented", out)
    write_records(target, rows)
    console.print(f"{len(sft)} examples → [bold]{len(rows)}[/bold] ({len(added)} new, shape {shape}) → {target}")
    for note in notes:
        console.print(f"  [dim]{note}[/dim]")


def _variants(examples: list[Any], templates: Path | None, model: str | None, endpoint: str | None,
              api_key: str | None, adapter: Path | None, n: int, cache: Path | None, replace: bool) -> Any:
    """The paraphrase source: templates (a file or the shipped defaults) or a model's answers."""
    from tunesmith.data import augment as aug

    if model is None:
        if endpoint:
            from tunesmith.utils.errors import ConfigError

            raise ConfigError(["--endpoint needs --model NAME (the model the server serves)"])
        return aug.template_variants(aug.load_templates(templates) if templates else list(aug.DEFAULT_TEMPLATES))
    from tunesmith.advise.llm import backend_id, local_backend, openai_backend
    from tunesmith.model.load import cache_root
    from tunesmith.utils.console import status

    model_id = backend_id(model, endpoint, str(adapter) if adapter else None)
    store = aug.ParaphraseCache(cache or cache_root() / "paraphrases.json")
    instructions = [aug.instruction_of(e) for e in examples]
    lazy: dict[str, Any] = {}

    def ask(prompts: list[str]) -> list[str]:  # the model loads only if something is not cached
        if "fn" not in lazy:
            with status(f"Loading {model}"):
                lazy["fn"] = (openai_backend(endpoint, model, api_key=api_key) if endpoint
                              else local_backend(model, adapter=str(adapter) if adapter else None))
        with status(f"Asking {model} for paraphrases of {len(prompts)} instruction(s)"):
            return lazy["fn"](prompts)

    found = aug.model_paraphrases(instructions, ask, model_id, store, n=n)
    console.print(f"paraphrases: {found.asked} instruction(s) asked, {found.cached} from the cache ({store.path})")
    empty = sum(1 for v in found.by_instruction.values() if not v)
    if empty:
        console.print(f"  [yellow]{empty} instruction(s) got no usable paraphrase[/yellow]")
    return lambda ins: ([ins] if replace else []) + found.by_instruction.get(ins, [])


OVERLAP_HELP = """Find evaluation or benchmark items that leak into the training data (exact and near matches).

Compares prompts by default (short answers such as a subject name repeat legitimately). Near matches
are character 5-gram Jaccard >= --threshold. --clean-train writes the training data without the
matched items.

Examples:

  tunesmith data overlap examples/data/subjects.train.json examples/data/subjects.test.json

  tunesmith data overlap train.jsonl bench.jsonl --threshold 0.9 --clean-train train.clean.jsonl
"""


@data_app.command("overlap", help=OVERLAP_HELP)
def overlap(
    train: Annotated[str, typer.Argument(help="Training data (file or registry name).")],
    evals: Annotated[list[str], typer.Argument(help="Evaluation / benchmark data (one or more).")],
    dataset_dir: DatasetDir = Path("."),
    threshold: Annotated[float, typer.Option(help="Near-match Jaccard threshold (0-1].")] = 0.8,
    exact_only: Annotated[bool, typer.Option("--exact-only", help="Only exact matches.")] = False,
    by: Part = "prompt",
    clean_train: Annotated[Path | None, typer.Option(help="Write the training data without leaked items.")] = None,
    show: Annotated[int, typer.Option(help="How many matches to list per file.")] = 10,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write every match as JSON.")] = None,
) -> None:
    from tunesmith.data.dedupe import example_text
    from tunesmith.data.overlap import find_overlap

    _check_part(by)
    train_path, train_raws, train_ex = _read(train, dataset_dir)
    leaked_train: set[int] = set()
    report_json = []
    for name in evals:
        eval_path, eval_raws, eval_ex = _read(name, dataset_dir)
        report = find_overlap(train_ex, eval_ex, part=by, threshold=threshold, near=not exact_only)  # type: ignore[arg-type]
        leaked_train |= report.leaked_train_indices()
        color = "red" if report.leaks else "green"
        console.print(f"[{color}]{eval_path}: {len(report.leaks)} of {report.n_eval} items ({100 * report.share:.1f}%) "
                      f"found in {train_path}[/{color}] ({report.n_exact} exact, {report.n_near} near)")
        for leak in report.leaks[:show]:
            console.print(f"  [dim]{leak.kind} {leak.similarity:.2f}[/dim] {eval_raws[leak.eval_index].origin} ~ "
                          f"{train_raws[leak.train_index].origin}: {example_text(eval_ex[leak.eval_index], by)[:70]!r}")
        report_json.append({"eval": str(eval_path), "n_eval": report.n_eval, "leaks": [
            {"eval": str(eval_raws[x.eval_index].origin), "train": str(train_raws[x.train_index].origin),
             "similarity": round(x.similarity, 4), "kind": x.kind} for x in report.leaks]})
    if clean_train:
        from tunesmith.data.writers import write_records

        kept = [r.data for i, r in enumerate(train_raws) if i not in leaked_train]
        write_records(clean_train, kept)
        console.print(f"Wrote {clean_train}: {len(kept)} of {len(train_raws)} training examples "
                      f"({len(leaked_train)} removed)")
    if json_out:
        from tunesmith.utils.io import write_json

        write_json(json_out, {"train": str(train_path), "by": by, "threshold": threshold, "files": report_json})


def register(app: typer.Typer) -> None:
    """The commands above are added to the ``data`` group when this module is imported."""
