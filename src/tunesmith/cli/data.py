"""``tunesmith data``: check, split (and more tools) for datasets, before any training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunesmith.utils.console import console

data_app = typer.Typer(help="Inspect and prepare datasets: check, split.", no_args_is_help=True)

CHECK_HELP = """Validate a dataset and print statistics with the model's tokenizer.

Shows the detected format, example count, token lengths, the share of tokens that carry loss, how
many examples cutoff_len would cut, duplicates, and how varied the instructions are. With --template
it prints one rendered example with the trained (loss-bearing) tokens highlighted.

Examples:

  tunesmith data check examples/data/subjects.json --template gemma

  tunesmith data check subjects_train subjects_val --dataset-dir examples/data
"""


def _load(name: str, dataset_dir: Path, max_samples: int | None = None) -> list:
    from tunesmith.data.registry import load_examples

    return load_examples(name, dataset_dir, max_samples)


@data_app.command("check", help=CHECK_HELP)
def check(
    datasets: Annotated[list[str], typer.Argument(help="Files or registry names (one table row each).")],
    dataset_dir: Annotated[Path, typer.Option(help="Folder with dataset_info.json.")] = Path("."),
    model: Annotated[str, typer.Option(help="Model whose tokenizer measures lengths.")] = "gemma-3-270m",
    template: Annotated[str, typer.Option(help="Chat template (auto picks by model).")] = "auto",
    cutoff_len: Annotated[int, typer.Option(help="Report examples longer than this.")] = 1024,
    show: Annotated[int, typer.Option(help="Which example to render (0-based).")] = 0,
    enable_thinking: Annotated[bool, typer.Option(help="Reasoning templates: train with thinking on.")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON.")] = None,
    media_dir: Annotated[Path | None, typer.Option(help="Folder relative image / video paths are under "
                                                   "(default: beside the dataset file).")] = None,
    image_max_pixels: Annotated[int | None, typer.Option(help="Vision models: the processor's max_pixels.")] = None,
    image_min_pixels: Annotated[int | None, typer.Option(help="Vision models: the processor's min_pixels.")] = None,
) -> None:
    loaded = {name: _load(name, dataset_dir) for name in datasets}  # format errors before the tokenizer loads
    from tunesmith.data.media import check_media, has_media, resolve_media

    for name, examples in loaded.items():  # missing / unreadable media and placeholder counts, before any model
        check_media(resolve_media(examples, media_dir), name=name)
    import dataclasses

    from rich.table import Table

    from tunesmith.data.checks import check_examples, position_warning, reasoning_note, render_marked
    from tunesmith.data.templates import get_template
    from tunesmith.model.load import load_tokenizer, resolve_model_path
    from tunesmith.model.vision import is_vision_model, load_processor

    path = resolve_model_path(model)
    processor = None
    if is_vision_model(path):
        from tunesmith.config.schema import DataArgs

        processor = load_processor(path, DataArgs(image_max_pixels=image_max_pixels,
                                                  image_min_pixels=image_min_pixels))
    tok = processor.tokenizer if processor else load_tokenizer(path)
    import json

    model_cfg = json.loads((Path(path) / "config.json").read_text()) if Path(path).is_dir() else {}
    tmpl = get_template(template, model_cfg.get("model_type"), tok)
    tmpl = dataclasses.replace(tmpl, enable_thinking=enable_thinking)
    reports = [check_examples(n, ex, tmpl, tok, cutoff_len) for n, ex in loaded.items()]
    if processor is not None:
        from tunesmith.data.vision import media_report

        for r, examples in zip(reports, loaded.values(), strict=True):
            r.media, full = media_report(examples, tmpl, processor, cutoff_len)
            for i, n in full.items():  # lengths with the vision tokens
                r.lengths[i] = n
    table = Table(title=f"Dataset check · tokenizer {model} · template {tmpl.name} · cutoff_len {cutoff_len}",
                  title_justify="left")
    for col in ("split", "format", "examples", "tokens min/mean/p95/max", "loss share", "over cutoff",
                "duplicates", "distinct instr.", "top instr. share"):
        table.add_column(col, justify="left" if col in ("split", "format") else "right")
    for r in reports:
        s = r.length_summary()
        lengths = f"{s.get('min', 0)}/{s.get('mean', 0)}/{s.get('p95', 0)}/{s.get('max', 0)}"
        over = f"[red]{r.n_over_cutoff}[/red]" if r.n_over_cutoff else "0"
        dup = f"[yellow]{r.n_duplicates}[/yellow]" if r.n_duplicates else "0"
        share = f"{100 * r.top_instruction_share:.0f}%"
        if r.top_instruction_share > 0.3:
            share = f"[yellow]{share}[/yellow]"
        table.add_row(r.name, r.kind, str(r.n), lengths, f"{100 * r.loss_share:.1f}%", over, dup,
                      str(r.distinct_instructions), share)
    console.print(table)
    if warning := position_warning(cutoff_len, model_cfg):
        console.print(f"[yellow]{warning}[/yellow]")
    for r, examples in zip(reports, loaded.values(), strict=True):
        if r.media:
            console.print(f"{r.name}: {r.media['records_with_media']} record(s) with media: {r.media['images']} "
                          f"image(s), {r.media['videos']} video(s), {r.media['vision_tokens']:,} vision tokens "
                          "(counted in the lengths above)")
        elif processor is None and any(has_media(e) for e in examples):
            console.print(f"[yellow]{r.name}: records carry images / video, but {model} is a text-only model; "
                          "training it on them is refused[/yellow]")
        if note := reasoning_note(tmpl, r.n_reasoning, r.n):
            console.print(f"{r.name}: {note}")
        if r.n_over_cutoff:
            console.print(f"[red]{r.name}: {r.n_over_cutoff} example(s) exceed cutoff_len={cutoff_len}[/red] and "
                          f"would be cut: {', '.join(r.over_cutoff[:5])}")
        if r.top_instruction_share > 0.3:
            console.print(f"[yellow]{r.name}: {100 * r.top_instruction_share:.0f}% of examples share the instruction "
                          f"{r.top_instruction!r}[/yellow]: vary the wording, or the model learns the phrase "
                          "instead of the task (see the notes on instruction diversity).")
    first = next(iter(loaded.values()))
    sft = [e for e in first if e.kind == "sft"]
    if sft:
        ex = sft[min(show, len(sft) - 1)]
        console.rule(f"example {min(show, len(sft) - 1)} rendered with '{tmpl.name}' "
                     "([black on green]highlighted[/black on green] or ⟦bracketed⟧ = carries loss)")
        from rich.text import Text

        text = Text()
        plain = not console.is_terminal or console.no_color  # no colours: mark trained spans with ⟦ ⟧
        for piece, trained in render_marked(ex, tmpl, tok):
            if plain and trained:
                piece = f"⟦{piece}⟧"
            text.append(piece, style="black on green" if trained else "dim")
        console.print(text)
    if json_out:
        from tunesmith.utils.io import write_json

        report = {"template": tmpl.name, "cutoff_len": cutoff_len, "splits": [r.to_dict() for r in reports]}
        write_json(json_out, report)


SPLIT_HELP = """Split a dataset into train / val / test files, deterministically (same seed, same split).

Writes NAME.train.EXT, NAME.val.EXT, NAME.test.EXT beside the input (or into --out-dir) in the input's
format. The notes suggest 7 : 1.5 : 1.5.

Examples:

  tunesmith data split examples/data/subjects.json --ratios 7,1.5,1.5

  tunesmith data split my_data.jsonl --ratios 8,2 --out-dir data
"""


@data_app.command("split", help=SPLIT_HELP)
def split(
    file: Annotated[Path, typer.Argument(help="A JSON / JSONL / CSV / Parquet file.")],
    ratios: Annotated[str, typer.Option(help="train,val[,test] shares.")] = "7,1.5,1.5",
    seed: Annotated[int, typer.Option(help="Shuffle seed.")] = 42,
    out_dir: Annotated[Path | None, typer.Option(help="Where to write (default: beside the input).")] = None,
) -> None:
    from tunesmith.data.formats import convert_records
    from tunesmith.data.readers import read_records
    from tunesmith.data.split import parse_ratios, split_items, split_names
    from tunesmith.data.writers import write_records

    shares = parse_ratios(ratios)
    records = read_records(file)
    convert_records(records)  # validate every record before writing anything
    parts = split_items([r.data for r in records], shares, seed=seed)
    targets = split_names((out_dir or file.parent) / file.name, len(parts))
    for part, target in zip(parts, targets):
        write_records(target, part)
        console.print(f"  {target}  [bold]{len(part)}[/bold] examples")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
