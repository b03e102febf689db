"""The Data tab: pick or upload a dataset, preview its records, run ``tunesmith data check`` on it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from tunesmith.utils.errors import TunesmithError
from tunesmith.utils.io import copy_new
from tunesmith.webui import commands
from tunesmith.webui.i18n import t
from tunesmith.webui.runs import dataset_names, preview_images, preview_rows
from tunesmith.webui.ui import Context

PREVIEW_COLUMNS = ("format", "system", "prompt", "answer", "rejected", "turns", "images")
WIDTHS = {"format": 7, "system": 15, "prompt": 50, "answer": 25, "rejected": 20, "turns": 6, "images": 6}  # percent
MAX_THUMBNAILS = 24
STATS_COLUMNS = ("split", "format", "examples", "tokens", "loss_share", "over_cutoff", "duplicates", "distinct",
                 "top_share")


def _copy_upload(upload: str, dataset_dir: str) -> str:
    """Copy an uploaded file into dataset_dir (never over an existing file, never half-copied); returns its
    name there."""
    return copy_new(upload, dataset_dir).name


def preview_table(name: str, dataset_dir: str, lang: str) -> tuple[Any, str]:
    """(records table, message) for a dataset."""
    import pandas as pd

    headers = [t(f"col_{c}", lang) for c in PREVIEW_COLUMNS]
    try:
        n, kinds, rows = preview_rows(name, dataset_dir)
    except TunesmithError as exc:
        return pd.DataFrame(columns=headers), f"⚠ {exc}"
    keep = [i for i, c in enumerate(PREVIEW_COLUMNS) if c in ("format", "prompt") or any(r[c] for r in rows)]
    frame = pd.DataFrame([[r[PREVIEW_COLUMNS[i]] for i in keep] for r in rows], columns=[headers[i] for i in keep])
    widths = [f"{WIDTHS[PREVIEW_COLUMNS[i]]}%" for i in keep]
    return (gr.update(value=frame, column_widths=widths),
            t("previewing", lang, n=n, name=f"`{name}`", kinds=", ".join(kinds), shown=len(rows)))


def stats_table(report: dict[str, Any], lang: str = "en") -> Any:
    """The ``data check --json`` report as the same table the CLI prints."""
    import pandas as pd

    rows = []
    for s in report.get("splits", []):
        tok = s.get("tokens", {})
        rows.append([s["name"], s["format"], s["examples"],
                     f"{tok.get('min', 0)}/{tok.get('mean', 0)}/{tok.get('p95', 0)}/{tok.get('max', 0)}",
                     f"{100 * s['loss_token_share']:.1f}%", s["over_cutoff_len"], s["duplicates"],
                     s["distinct_instructions"], f"{100 * s['top_instruction_share']:.0f}%"])
    return pd.DataFrame(rows, columns=[t(f"stat_{c}", lang) for c in STATS_COLUMNS])


class DataTab:
    """Dataset picker, preview and checks."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def draw(self) -> None:
        ctx = self.ctx
        start_dir = ctx.workdir / "examples" / "data"
        start_dir = start_dir if start_dir.is_dir() else ctx.workdir / "data"
        names = dataset_names(start_dir)
        with gr.Row(equal_height=True):
            self.dir = ctx.tr(gr.Textbox(str(start_dir), label=ctx.text("dataset_dir"), scale=3,
                                         elem_id="data-dir"), label="dataset_dir")
            self.name = ctx.tr(gr.Dropdown(choices=names, value=names[0] if names else None, allow_custom_value=True,
                                           label=ctx.text("dataset_pick"), scale=2, elem_id="data-name"),
                               label="dataset_pick")
            self.upload = ctx.tr(gr.UploadButton(ctx.text("upload"), type="filepath", scale=2, elem_id="data-upload",
                                                 file_types=[".json", ".jsonl", ".csv", ".parquet", ".txt"]),
                                 label="upload")
        with gr.Row():
            self.preview_btn = ctx.tr(gr.Button(ctx.text("preview"), variant="primary", elem_id="data-preview"),
                                      value="preview")
            self.check_btn = ctx.tr(gr.Button(ctx.text("check"), elem_id="data-check"), value="check")
            self.use_btn = ctx.tr(gr.Button(ctx.text("use_for_training"), elem_id="data-use"),
                                  value="use_for_training")
        self.msg = gr.Markdown(elem_id="data-message")
        import pandas as pd

        self.records = ctx.tr(gr.Dataframe(pd.DataFrame(columns=[t(f"col_{c}", ctx.lang) for c in PREVIEW_COLUMNS]),
                                           label=ctx.text("records"), wrap=True, interactive=False, max_height=420,
                                           elem_id="data-records"), label="records")
        self.gallery = ctx.tr(gr.Gallery(label=ctx.text("media_preview"), columns=8, height=180, visible=False,
                                         elem_id="data-images"), label="media_preview")
        self.stats = ctx.tr(gr.Dataframe(stats_table({}, ctx.lang), label=ctx.text("stats"), interactive=False,
                                         elem_id="data-stats"), label="stats")
        self.check_out = ctx.tr(gr.Textbox(label=ctx.text("check_output"), lines=8, max_lines=30,
                                           interactive=False, elem_id="data-check-output"), label="check_output")

    def _check(self, name: str, dataset_dir: str, model: str, template: str, cutoff_len: float | None,
               lang: str) -> Any:
        if not name:
            raise gr.Error("no dataset")
        dataset_dir = self._folder(dataset_dir)
        with tempfile.TemporaryDirectory() as tmp:
            report_path = Path(tmp) / "report.json"
            args = ["data", "check", name, "--dataset-dir", dataset_dir or ".", "--model", model or "gemma-3-270m",
                    "--template", template or "auto", "--cutoff-len", str(int(cutoff_len or 1024)),
                    "--json", str(report_path)]
            for progress in commands.stream(args, cwd=self.ctx.workdir):
                text = f"$ {progress.command}\n\n{progress.output}"
                report = json.loads(report_path.read_text()) if report_path.exists() else {}
                yield stats_table(report, lang), text

    def _folder(self, dataset_dir: str | None) -> str:
        """The dataset folder as an absolute path inside --workdir (gr.Error when it is not)."""
        try:
            return str(self.ctx.paths.resolve(dataset_dir or ".", "dataset folder"))
        except TunesmithError as exc:
            raise gr.Error(str(exc)) from exc

    def _preview(self, name: str, dataset_dir: str, lang: str) -> tuple[Any, str]:
        try:
            folder = str(self.ctx.paths.resolve(dataset_dir or ".", "dataset folder"))
        except TunesmithError as exc:
            return gr.update(), f"⚠ {exc}"
        return preview_table(name, folder, lang)

    def _images(self, name: str, dataset_dir: str, media_dir: str | None) -> Any:
        """Thumbnails of the previewed records' images (only files inside --workdir are shown)."""
        try:
            folder = self.ctx.paths.resolve(dataset_dir or ".", "dataset folder")
            media = str(self.ctx.paths.resolve(media_dir, "media folder")) if media_dir else None
            found = preview_images(name, folder, media)
        except TunesmithError:
            return gr.update(value=None, visible=False)
        from PIL import Image

        shown = []
        for path, caption in found[:MAX_THUMBNAILS]:
            try:
                self.ctx.paths.resolve(path, "image")
                with Image.open(path) as img:
                    img.thumbnail((256, 256))
                    shown.append((img.convert("RGB"), caption))
            except (TunesmithError, OSError):
                continue
        return gr.update(value=shown or None, visible=bool(shown))

    def _names(self, dataset_dir: str | None) -> Any:
        try:
            return gr.update(choices=dataset_names(self.ctx.paths.resolve(dataset_dir or ".", "dataset folder")))
        except TunesmithError:
            return gr.update(choices=[])

    def wire(self, lang: Any, refresh_train: tuple[Any, list[Any], list[Any]]) -> None:
        ctx = self.ctx
        self.dir.change(self._names, self.dir, self.name, show_progress="hidden")

        def uploaded(up: str | None, d: str, lg: str) -> tuple[Any, str]:
            if not up:
                return gr.update(), ""
            d = self._folder(d)
            name = _copy_upload(up, d)
            return gr.update(choices=dataset_names(d), value=name), t("uploaded", lg, path=f"`{Path(d) / name}`")

        self.upload.upload(uploaded, [self.upload, self.dir, lang], [self.name, self.msg]).then(
            self._preview, [self.name, self.dir, lang], [self.records, self.msg])
        self.preview_btn.click(self._preview, [self.name, self.dir, lang], [self.records, self.msg])
        self.name.change(self._preview, [self.name, self.dir, lang], [self.records, self.msg], show_progress="hidden")
        media = ctx.fields.get("media_dir")
        for trigger in (self.preview_btn.click, self.name.change):
            trigger(self._images, [self.name, self.dir, *([media] if media is not None else [])], self.gallery,
                    show_progress="hidden")
        self.check_btn.click(self._check, [self.name, self.dir, ctx.fields["model_name_or_path"],
                                           ctx.fields["template"], ctx.fields["cutoff_len"], lang],
                             [self.stats, self.check_out])

        def use(name: str, d: str, lg: str) -> tuple[Any, Any, str]:
            return (gr.update(value=[name], choices=dataset_names(d)), gr.update(value=d),
                    t("set_for_training", lg, name=f"`{name}`", dir=f"`{d}`"))

        fn, inputs, outputs = refresh_train
        self.use_btn.click(use, [self.name, self.dir, lang],
                           [ctx.fields["dataset"], ctx.fields["dataset_dir"], self.msg]).then(fn, inputs, outputs)
