"""The Train tab: the config form, its YAML and command, start / stop, the live curve and log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gradio as gr

from tunesmith.config.schema import GROUPS
from tunesmith.utils.errors import TunesmithError
from tunesmith.utils.io import write_text
from tunesmith.webui import commands, form, views
from tunesmith.webui.i18n import t
from tunesmith.webui.jobs import ACTIVE_STATES, Job, cli_command, shown_command
from tunesmith.webui.runs import dataset_names
from tunesmith.webui.ui import DATASET_KEYS, Context

OTHER_TAB_GROUPS = ("eval", "export", "serve")  # drawn in the Evaluate and Export tabs
POLL_SECONDS = 1.5
def preview(ctx: Context, values: list[Any], stages: list[dict], lang: str) -> tuple[str, str, str]:
    """(command, YAML, problems) for the form as it is now."""
    flat = form.flat_from_form(values)
    target = ctx.jobs.next_dir(str(flat.get("output_dir") or "run")) / "config.yaml"
    command = shown_command(cli_command("train", str(target.resolve())))
    problems = form.config_problems({**flat, "stages": stages} if stages else flat)
    note = (f"**{t('problems', lang)}**\n" + "\n".join(f"- {p}" for p in problems)) if problems \
        else t("config_ok", lang)
    return command, form.to_yaml(flat, stages=stages), note


def fill_form(ctx: Context, flat: dict[str, Any]) -> list[Any]:
    """gr.update for every field so the form shows ``flat`` (dataset choices follow dataset_dir)."""
    names = dataset_names(flat.get("dataset_dir") or ".")
    out = []
    for spec, value in zip(form.FIELDS, form.form_values(flat)):
        if spec.key in DATASET_KEYS:
            out.append(gr.update(value=value if isinstance(value, list) else flat.get(spec.key, []),
                                 choices=sorted(set(names) | set(flat.get(spec.key) or []))))
        else:
            out.append(gr.update(value=value))
    return out


def load_file(ctx: Context, source: str | None, lang: str, *, uploaded: bool = False) -> list[Any]:
    """Fill the form from a YAML file: [*field updates, stages, message]. A typed path must lie inside
    --workdir; an uploaded file (in Gradio's upload folder) is what the user sent, not a path they chose."""
    try:
        if uploaded and source:
            path: Path | None = Path(source)
        else:
            path = ctx.paths.resolve(source, "config file") if source else None
    except TunesmithError as exc:  # outside --workdir
        return [gr.update() for _ in form.FIELDS] + [gr.update(), f"⚠ {exc}"]
    if path is None or not path.is_file():
        return [gr.update() for _ in form.FIELDS] + [gr.update(), "⚠ " + t("file_not_found", lang, path=source)]
    try:
        flat, stages, problems = form.read_config_file(path)
    except TunesmithError as exc:
        return [gr.update() for _ in form.FIELDS] + [gr.update(), f"⚠ {exc}"]
    msg = t("loaded", lang, path=f"`{source}`")
    if problems:
        msg += f"\n\n**{t('problems', lang)}**\n" + "\n".join(f"- {p}" for p in problems)
    return fill_form(ctx, flat) + [stages, msg]


def monitor(ctx: Context, job_id: str | None, lang: str) -> list[Any]:
    """[status, curve, log, result, start, stop, force stop, timer] for the job (or the newest one)."""
    job: Job | None = ctx.jobs.get(job_id) if job_id else ctx.jobs.latest()
    active = job is not None and job.state() in ACTIVE_STATES
    return [
        views.status_markdown(job, lang),
        views.curve_frame(job.log_rows() if job else []),
        job.console_tail() if job else "",
        views.result_markdown(job, lang),
        gr.update(interactive=not active),
        gr.update(interactive=active),
        gr.update(interactive=active),
        gr.Timer(active=active),
        job.id if job else None,
    ]


class TrainTab:
    """The form (every group but eval/export/serve), the run panel, the YAML and command, the advice."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def draw(self) -> None:
        ctx = self.ctx
        default_yaml = ctx.workdir / "examples" / "quickstart.yaml"
        with gr.Row(equal_height=True):
            self.config_path = ctx.tr(gr.Textbox(value=str(default_yaml) if default_yaml.exists() else "", scale=4,
                                                 label=ctx.text("config_file"), elem_id="config-path"),
                                      label="config_file")
            self.load_btn = ctx.tr(gr.Button(ctx.text("load"), scale=1, elem_id="load-config"), value="load")
            self.upload = ctx.tr(gr.UploadButton(ctx.text("upload_config"), file_types=[".yaml", ".yml"],
                                                 type="filepath", scale=1, elem_id="upload-config"),
                                 label="upload_config")
        self.load_msg = gr.Markdown(elem_id="load-message")
        self.stages = gr.State([])
        self.job_id = gr.State(None)
        self.timer = gr.Timer(POLL_SECONDS, active=False)
        with gr.Row():
            with gr.Column(scale=5):
                for group in GROUPS:
                    if group not in OTHER_TAB_GROUPS:
                        ctx.group(group)
            with gr.Column(scale=4, elem_id="run-panel"):
                self._draw_run_panel()

    def _draw_run_panel(self) -> None:
        ctx = self.ctx
        with gr.Row():
            self.start = ctx.tr(gr.Button(ctx.text("start"), variant="primary", elem_id="start"), value="start")
            self.stop = ctx.tr(gr.Button(ctx.text("stop"), variant="stop", interactive=False, elem_id="stop"),
                               value="stop")
            self.force = ctx.tr(gr.Button(ctx.text("force_stop"), interactive=False, elem_id="force-stop"),
                                value="force_stop")
        self.status = gr.Markdown(t("no_job", ctx.lang), elem_id="job-status")
        self.curve = ctx.tr(gr.LinePlot(views.curve_frame([]), x="step", y="value", color="series",
                                        label=ctx.text("curve"), elem_id="loss-curve",
                                        x_title=ctx.text("step"), y_title=ctx.text("loss"), color_title="",
                                        color_map={"loss": "#2563eb", "eval_loss": "#ea580c"}),
                            label="curve", x_title="step", y_title="loss")
        self.log = ctx.tr(gr.Textbox(label=ctx.text("log"), lines=10, max_lines=10, autoscroll=True,
                                     interactive=False, elem_id="job-log"), label="log")
        self.result = gr.Markdown(elem_id="job-result")
        self.command = ctx.tr(gr.Code(label=ctx.text("command"), language="shell", lines=1, interactive=False,
                                      show_line_numbers=False, elem_id="train-command"), label="command")
        self.problems = gr.Markdown(elem_id="config-problems")
        self.yaml = ctx.tr(gr.Code(label=ctx.text("yaml"), language="yaml", lines=20, interactive=False,
                                   show_line_numbers=False, elem_id="train-yaml"), label="yaml")
        with ctx.tr(gr.Accordion(ctx.text("advice"), open=True, elem_id="advice-box"), label="advice"):
            with gr.Row():
                self.advise_btn = ctx.tr(gr.Button(ctx.text("advice_button"), size="sm", elem_id="advise"),
                                         value="advice_button")
                self.apply_btn = ctx.tr(gr.Button(ctx.text("apply_advice"), size="sm", interactive=False,
                                                  elem_id="apply-advice"), value="apply_advice")
            self.advice = gr.Markdown(elem_id="advice")
            self.advice_changes = gr.State({})

    @property
    def monitor_outputs(self) -> list[Any]:
        return [self.status, self.curve, self.log, self.result, self.start, self.stop, self.force, self.timer,
                self.job_id]

    @property
    def preview_outputs(self) -> list[Any]:
        return [self.command, self.yaml, self.problems]

    # --- events ----------------------------------------------------------------------------------

    def _preview(self, *args: Any) -> tuple[str, str, str]:
        *values, stages, lang = args
        return preview(self.ctx, list(values), stages, lang)

    def _start(self, *args: Any) -> list[Any]:
        *values, stages, lang = args
        flat = form.flat_from_form(values)
        problems = form.config_problems({**flat, "stages": stages} if stages else flat)
        if problems:
            raise gr.Error("\n".join(problems))
        try:
            for config in [flat, *[{**flat, **s} for s in stages or []]]:
                self.ctx.paths.check_config(config)  # typed paths stay inside --workdir
            job = self.ctx.jobs.start(form.to_yaml(flat, stages=stages), str(flat["output_dir"]),
                                      cwd=self.ctx.workdir)
        except TunesmithError as exc:
            raise gr.Error(str(exc)) from exc
        gr.Info(t("started", lang, id=job.id))
        return monitor(self.ctx, job.id, lang)

    def _stop(self, job_id: str | None, lang: str, force: bool = False) -> list[Any]:
        job = self.ctx.jobs.get(job_id) if job_id else self.ctx.jobs.active()
        if job is not None:
            self.ctx.jobs.stop(job, force=force)
            gr.Info(t("stop_sent", lang))
        return monitor(self.ctx, job.id if job else None, lang)

    def _advise(self, *args: Any) -> tuple[str, dict[str, Any], Any]:
        """Run ``tunesmith advise`` on the form's config: (advice, changes it recommends, apply button)."""
        *values, stages, lang = args
        if not commands.available("advise"):
            return t("unavailable", lang, command="advise"), {}, gr.update(interactive=False)
        try:
            self.ctx.paths.check_config(form.flat_from_form(values))
        except TunesmithError as exc:
            raise gr.Error(str(exc)) from exc
        folder = self.ctx.jobs.root / "advise"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "advice.json").unlink(missing_ok=True)
        write_text(folder / "config.yaml", form.to_yaml(form.flat_from_form(values), stages=stages))
        done = commands.run(["advise", str(folder / "config.yaml"), "--json", str(folder / "advice.json")],
                            cwd=self.ctx.workdir)
        header = f"`{done.command}`\n\n"
        if done.returncode != 0 or not (folder / "advice.json").exists():
            return header + f"```\n{done.output.strip()}\n```", {}, gr.update(interactive=False)
        report = json.loads((folder / "advice.json").read_text(encoding="utf-8"))
        data_line = next((line for line in done.output.splitlines() if line.startswith("Data:")), "")
        changes = report.get("changes") or {}
        return (header + (f"{data_line}\n\n" if data_line else "") + views.advice_markdown(report, lang),
                changes, gr.update(interactive=bool(changes)))

    def _apply(self, *args: Any) -> list[Any]:
        """Put the advisor's recommended values into the form."""
        *values, changes, lang = args
        flat = {**form.flat_from_form(values), **(changes or {})}
        gr.Info(t("advice_applied", lang, changes=", ".join(f"{k}={v}" for k, v in (changes or {}).items())))
        return [*fill_form(self.ctx, flat), gr.update(interactive=False)]

    def wire(self, lang: Any) -> None:
        """Connect the events (after every tab has drawn its fields)."""
        ctx = self.ctx
        fields = ctx.field_list()
        preview_in = [*fields, self.stages, lang]
        gr.on([f.input for f in fields] + [lang.change], self._preview, preview_in, self.preview_outputs,
              trigger_mode="always_last", show_progress="hidden")
        load_out = [*fields, self.stages, self.load_msg]
        self.load_btn.click(lambda p, lg: load_file(ctx, p, lg), [self.config_path, lang], load_out).then(
            self._preview, preview_in, self.preview_outputs)
        self.upload.upload(lambda p, lg: load_file(ctx, p, lg, uploaded=True), [self.upload, lang], load_out).then(
            self._preview, preview_in, self.preview_outputs)
        self.start.click(self._start, preview_in, self.monitor_outputs).then(
            self._preview, preview_in, self.preview_outputs)
        self.stop.click(lambda j, lg: self._stop(j, lg), [self.job_id, lang], self.monitor_outputs)
        self.force.click(lambda j, lg: self._stop(j, lg, True), [self.job_id, lang], self.monitor_outputs)
        self.timer.tick(lambda j, lg: monitor(ctx, j, lg), [self.job_id, lang], self.monitor_outputs,
                        show_progress="hidden")
        lang.change(lambda j, lg: monitor(ctx, j, lg), [self.job_id, lang], self.monitor_outputs,
                    show_progress="hidden")
        self.advise_btn.click(self._advise, preview_in, [self.advice, self.advice_changes, self.apply_btn])
        self.apply_btn.click(self._apply, [*fields, self.advice_changes, lang], [*fields, self.apply_btn]).then(
            self._preview, preview_in, self.preview_outputs)
        dataset_dir = ctx.fields["dataset_dir"]
        dataset_fields = [ctx.fields[k] for k in DATASET_KEYS if k in ctx.fields]
        dataset_dir.change(lambda d: [gr.update(choices=dataset_names(d or ".")) for _ in dataset_fields],
                           dataset_dir, dataset_fields, show_progress="hidden")

    def on_page_load(self, lang: str) -> list[Any]:
        """Re-attach to the running (or newest) job; show its config in the form. Outputs: page_load_outputs."""
        job = self.ctx.jobs.latest()
        filled = [gr.update() for _ in form.FIELDS]
        stages: Any = gr.update()
        if job is not None and job.config_path.exists():
            try:
                flat, stages, _ = form.read_config_file(job.config_path)
                filled = fill_form(self.ctx, flat)
            except TunesmithError:
                pass
        return [*filled, stages, *monitor(self.ctx, job.id if job else None, lang)]

    @property
    def page_load_outputs(self) -> list[Any]:
        return [*self.ctx.field_list(), self.stages, *self.monitor_outputs]
