"""The Evaluate and Export tabs: run ``tunesmith eval`` / ``tunesmith export`` on a run folder.

Each writes the form's config (with ``adapter_name_or_path`` set to the chosen run) to a YAML file,
runs the command on it in a subprocess, streams what it prints, and shows the report files it wrote.
A command this version of tunesmith does not have is reported as such instead of failing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from tunesmith.utils.errors import TunesmithError
from tunesmith.utils.io import write_text
from tunesmith.webui import commands, form
from tunesmith.webui.i18n import t
from tunesmith.webui.jobs import cli_command, shown_command
from tunesmith.webui.ui import Context

REPORT_SUFFIXES = (".md", ".json", ".jsonl", ".csv", ".txt", ".png")


def new_files(folders: list[Path], since: float) -> list[Path]:
    """Files in ``folders`` (two levels deep) written after ``since``, newest first."""
    found = []
    for folder in folders:
        if folder.is_dir():
            for path in [*folder.glob("*"), *folder.glob("*/*")]:
                if path.is_file() and path.suffix in REPORT_SUFFIXES and path.stat().st_mtime >= since:
                    found.append(path)
    return sorted(set(found), key=lambda p: p.stat().st_mtime, reverse=True)


def report_markdown(files: list[Path]) -> str:
    """The newest Markdown report in full, then the list of every file written."""
    parts = []
    md = next((p for p in files if p.suffix == ".md"), None)
    if md is not None:
        parts.append(md.read_text(encoding="utf-8", errors="replace"))
    if files:
        parts.append("\n".join(f"- `{p}`" for p in files))
    return "\n\n".join(parts)


class CommandTab:
    """A run picker, the config group(s) the command reads, a button, its command, output and report."""

    command = ""  # the tunesmith sub-command
    groups: tuple[str, ...] = ()
    button = ""  # i18n key

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def draw(self) -> None:
        ctx = self.ctx
        runs = ctx.runs()
        with gr.Row(equal_height=True):
            self.run_dir = ctx.tr(gr.Dropdown(choices=runs, value=runs[0] if runs else None, allow_custom_value=True,
                                              label=ctx.text("run_dir"), elem_id=f"{self.command}-run", scale=3),
                                  label="run_dir")
            self.draw_extra_pickers()
        for group in self.groups:
            ctx.group(group, columns=3)
        self.button_el = ctx.tr(gr.Button(ctx.text(self.button), variant="primary", elem_id=f"{self.command}-button"),
                                value=self.button)
        self.cmd = ctx.tr(gr.Code(self.shown(runs[0] if runs else "", *[None for _ in self.extra_inputs]),
                                  label=ctx.text("command"), language="shell", lines=1, interactive=False,
                                  show_line_numbers=False, elem_id=f"{self.command}-command"), label="command")
        if not commands.available(self.command):
            ctx.tr(gr.Markdown(ctx.text("unavailable").format(command=self.command), elem_id=f"{self.command}-notice"),
                   value=lambda lang: t("unavailable", lang, command=self.command))
        self.output = ctx.tr(gr.Textbox(label=ctx.text("output"), lines=12, max_lines=12, autoscroll=True,
                                        interactive=False, elem_id=f"{self.command}-output"), label="output")
        self.report = gr.Markdown(elem_id=f"{self.command}-report")
        self.draw_after()

    def draw_extra_pickers(self) -> None:
        """More pickers beside the run folder (none by default)."""

    def draw_after(self) -> None:
        """More components below the output (none by default)."""

    def args(self, config_path: Path, extra: list[Any]) -> list[str]:
        return [self.command, str(config_path)]

    def config_path(self) -> Path:
        """Where the config for this command is written (a new run overwrites it)."""
        return self.ctx.jobs.root / f"{self.command}.yaml"

    def shown(self, run: str, *extra: Any) -> str:
        """The command line it will run (shown before and while it runs)."""
        return shown_command(cli_command(*self.args(self.config_path(), list(extra))))

    def report_folders(self, flat: dict[str, Any], run: str) -> list[Path]:
        return [self.ctx.workdir / run]

    def run_command(self, lang: str, run: str, stages: list[dict], extra: list[Any],
                    values: list[Any]) -> Iterator[tuple[str, str, str]]:
        """Write the config (the form's values, with the chosen run as adapter) and run the command on it,
        yielding (command, output so far, report) until it ends."""
        if not commands.available(self.command):
            yield "", t("unavailable", lang, command=self.command), ""
            return
        if not run:
            raise gr.Error(t("run_dir", lang))
        flat = {**form.flat_from_form(values), "adapter_name_or_path": run}
        try:
            for config in [flat, *[{**flat, **s} for s in stages or []]]:
                self.ctx.paths.check_config(config)  # typed paths stay inside --workdir
        except TunesmithError as exc:
            raise gr.Error(str(exc)) from exc
        path = self.config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, form.to_yaml(flat, stages=stages))
        shown = self.shown(run, *extra)
        started = time.time() - 1
        output = ""
        for progress in commands.stream(self.args(path, extra), cwd=self.ctx.workdir):
            output = progress.output
            if progress.returncode is not None:
                output += "\n" + t("exit_code", lang, code=progress.returncode)
            yield shown, output, ""
        yield shown, output, report_markdown(new_files(self.report_folders(flat, run), started))

    def _run(self, lang: str, run: str, stages: list[dict], *rest: Any) -> Iterator[tuple[str, str, str]]:
        n = len(self.extra_inputs)
        yield from self.run_command(lang, run, stages, list(rest[:n]), list(rest[n:]))

    @property
    def extra_inputs(self) -> list[Any]:
        """Inputs beyond the run folder and the config form."""
        return []

    def wire(self, lang: Any, stages: Any) -> None:
        inputs = [lang, self.run_dir, stages, *self.extra_inputs, *self.ctx.field_list()]
        self.button_el.click(self._run, inputs, [self.cmd, self.output, self.report])
        pickers = [self.run_dir, *self.extra_inputs]
        gr.on([c.change for c in pickers], self.shown, pickers, self.cmd, show_progress="hidden")


class EvalTab(CommandTab):
    """``tunesmith eval``: score a run on its test split (and compare it with another run)."""

    command = "eval"
    groups = ("eval",)
    button = "run_eval"

    def draw_extra_pickers(self) -> None:
        self.compare = self.ctx.tr(gr.Dropdown(choices=["", "base", *self.ctx.runs()], value="",
                                               allow_custom_value=True, label=self.ctx.text("compare_dir"),
                                               elem_id="eval-compare", scale=2),
                                   label="compare_dir")

    @property
    def extra_inputs(self) -> list[Any]:
        return [self.compare]

    def args(self, config_path: Path, extra: list[Any]) -> list[str]:
        compare = extra[0] if extra else ""  # one name: compared with the run ('base' = no adapter)
        return ["eval", str(config_path), *(["--compare", compare] if compare else [])]

    def report_folders(self, flat: dict[str, Any], run: str) -> list[Path]:
        out = flat.get("eval_output_dir")  # default: RUN/eval
        return [self.ctx.workdir / out] if out else [self.ctx.workdir / run / "eval"]


class ExportTab(CommandTab):
    """``tunesmith export``: merge the adapter, quantize, write GGUF; and how to serve the result."""

    command = "export"
    groups = ("export", "serve")
    button = "run_export"

    def report_folders(self, flat: dict[str, Any], run: str) -> list[Path]:
        folders = [self.ctx.workdir / run]
        if flat.get("export_dir"):
            folders.append(self.ctx.workdir / flat["export_dir"])
        return folders

    def draw_after(self) -> None:
        self.serve_note = self.ctx.tr(gr.Markdown(self.ctx.text("serve_command"), elem_id="serve-note"),
                                      value="serve_command")
        self.serve_cmd = self.ctx.tr(gr.Code(label=self.ctx.text("command"), language="shell", lines=1,
                                             show_line_numbers=False, interactive=False, elem_id="serve-command"),
                                     label="command")

    def wire(self, lang: Any, stages: Any) -> None:
        super().wire(lang, stages)
        f = self.ctx.fields

        def serve_command(export_dir: str, run: str, host: str, port: float | None) -> str:
            target = ["--model", export_dir] if export_dir else ["--adapter", run or "RUN"]
            return shown_command(cli_command("serve", *target, "--host", host or "127.0.0.1",
                                             "--port", str(int(port or 8000))))

        inputs = [f["export_dir"], self.run_dir, f["host"], f["port"]]
        gr.on([c.change for c in inputs], serve_command, inputs, self.serve_cmd, show_progress="hidden")
        self.run_dir.change(suggest_export_dir, [self.run_dir, f["export_dir"]], f["export_dir"],
                            show_progress="hidden")


def suggest_export_dir(run: str | None, export_dir: str | None) -> str:
    """exports/<run name> for a chosen run, unless the user already typed a folder."""
    if export_dir or not run:
        return export_dir or ""
    return str(Path("exports") / Path(run).name)
