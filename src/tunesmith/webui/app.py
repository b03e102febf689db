"""The tunesmith web UI: one Gradio page with Data, Train, Evaluate, Chat and Export tabs.

It stays thin: the form writes a YAML config, training runs ``tunesmith train`` as a detached job
(jobs.py), evaluation and export run their CLI commands, and chat uses the same loading and
generation code as ``tunesmith chat``. Start it with ``tunesmith webui`` (127.0.0.1:7860).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tunesmith.utils.lazy import require
from tunesmith.webui.i18n import LANGS, TEXT, t
from tunesmith.webui.jobs import JobManager

CSS = """
.gradio-container { max-width: 1500px !important; }
#job-log textarea, #eval-output textarea, #export-output textarea, #data-check-output textarea {
  font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
#header h1 { margin-bottom: 0; }
#run-panel { position: sticky; top: 8px; align-self: flex-start; }
"""


# Logs and command output stay at their newest line, unless the user scrolled up to read.
FOLLOW_JS = """() => {
  const ids = ['job-log', 'eval-output', 'export-output', 'data-check-output'];
  setInterval(() => {
    for (const id of ids) {
      const t = document.querySelector('#' + id + ' textarea');
      if (!t) continue;
      if (!t.dataset.follow) {
        t.dataset.follow = '1';
        t.addEventListener('scroll', () => {
          t.dataset.follow = t.scrollHeight - t.scrollTop - t.clientHeight < 40 ? '1' : '0';
        });
      }
      if (t.dataset.follow === '1') t.scrollTop = t.scrollHeight;
    }
  }, 700);
}"""


def default_jobs_dir() -> Path:
    """$TUNESMITH_CACHE/webui/jobs or ~/.cache/tunesmith/webui/jobs."""
    root = os.environ.get("TUNESMITH_CACHE") or Path.home() / ".cache" / "tunesmith"
    return Path(root) / "webui" / "jobs"


def build_app(*, workdir: str | Path = ".", jobs_dir: str | Path | None = None, lang: str = "en",
              allow_outside_workdir: bool = False) -> Any:
    """The Gradio Blocks app (not launched)."""
    require("gradio", extra="webui")
    from tunesmith.webui.ui import Context

    return build(Context(JobManager(jobs_dir or default_jobs_dir()), Path(workdir).resolve(), lang,
                         allow_outside_workdir=allow_outside_workdir))


def build(ctx: Any) -> Any:
    """Draw every tab into one page and wire the language switch and page load (ctx: ui.Context)."""
    import gradio as gr

    from tunesmith.webui.tab_chat import ChatTab
    from tunesmith.webui.tab_data import DataTab
    from tunesmith.webui.tab_tools import EvalTab, ExportTab
    from tunesmith.webui.tab_train import TrainTab
    from tunesmith.webui.ui import updates_for

    lang = ctx.lang
    with gr.Blocks(title="tunesmith") as demo:
        with gr.Row(elem_id="header", equal_height=True):
            with gr.Column(scale=4):
                ctx.tr(gr.Markdown(f"# tunesmith\n{t('subtitle', lang)}"),
                               value=lambda lg: f"# tunesmith\n{t('subtitle', lg)}")
            language = gr.Radio([(name, code) for code, name in LANGS.items()], value=lang, scale=1,
                                label=TEXT["language"][0], elem_id="language")
        stored_lang = gr.BrowserState(lang, storage_key="tunesmith-webui-lang")
        tabs = {"data": DataTab(ctx), "train": TrainTab(ctx), "eval": EvalTab(ctx), "chat": ChatTab(ctx),
                "export": ExportTab(ctx)}
        with gr.Tabs(elem_id="tabs") as tab_set:
            for name, tab in tabs.items():
                with ctx.tr(gr.Tab(t(f"tab_{name}", lang), id=name, elem_id=f"tab-{name}"), label=f"tab_{name}"):
                    tab.draw()
        train: TrainTab = tabs["train"]  # type: ignore[assignment]
        train.wire(language)
        tabs["data"].wire(language, (train._preview, [*ctx.field_list(), train.stages, language],
                                     train.preview_outputs))
        tabs["eval"].wire(language, train.stages)
        tabs["export"].wire(language, train.stages)
        tabs["chat"].wire(language)

        translated = [c for c, _ in ctx.translated]
        language.change(lambda lg: updates_for(ctx.translated, lg), language, translated, show_progress="hidden")
        language.change(lambda lg: lg, language, stored_lang, show_progress="hidden")
        run_pickers = [tabs["eval"].run_dir, tabs["export"].run_dir, tabs["chat"].adapter]

        def page_load(saved_lang: str | None) -> list[Any]:
            runs = ctx.runs()  # newest first, including runs trained since the UI started
            busy = ctx.jobs.active() is not None  # open where the running job is
            return [saved_lang if saved_lang in LANGS else lang, gr.Tabs(selected="train") if busy else gr.Tabs(),
                    *[gr.update(choices=runs, value=runs[0] if runs else None) for _ in run_pickers],
                    gr.update(choices=["", "base", *runs]),
                    *train.on_page_load(saved_lang if saved_lang in LANGS else lang)]

        load_out = [language, tab_set, *run_pickers, tabs["eval"].compare, *train.page_load_outputs]
        demo.load(page_load, stored_lang, load_out).then(
            train._preview, [*ctx.field_list(), train.stages, language], train.preview_outputs)
    return demo


def launch(*, host: str = "127.0.0.1", port: int = 7860, workdir: str | Path = ".",
           jobs_dir: str | Path | None = None, lang: str = "en", block: bool = True,
           password_file: str | Path | None = None, allow_outside_workdir: bool = False) -> Any:
    """Build and serve the app on host:port (127.0.0.1 keeps it local; any other address needs a login,
    see security.py)."""
    from tunesmith.webui.security import PASSWORD_ENV, gradio_auth, resolve_login

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    gr = require("gradio", extra="webui")
    login = resolve_login(host, password_file)
    if login and login.generated:  # printed once, here; it is kept nowhere else
        print(f"The web UI listens on {host}, beyond this machine: log in as '{login.user}' with the password "
              f"{login.password}\n(set {PASSWORD_ENV} or --password-file to choose one)", flush=True)
    elif login:
        print(f"Login required: user '{login.user}'", flush=True)
    demo = build_app(workdir=workdir, jobs_dir=jobs_dir, lang=lang, allow_outside_workdir=allow_outside_workdir)
    demo.queue(default_concurrency_limit=4)
    theme = gr.themes.Default(primary_hue="blue", font=["system-ui", "Noto Sans CJK SC", "WenQuanYi Micro Hei",
                                                        "sans-serif"])
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, show_error=True, theme=theme,
                css=CSS, js=FOLLOW_JS, inbrowser=False, quiet=False, auth=gradio_auth(login),
                auth_message="tunesmith: log in (the password was printed when the UI started, or set with "
                f"{PASSWORD_ENV})" if login else None)
    return demo
