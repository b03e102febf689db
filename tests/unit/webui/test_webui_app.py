"""The Gradio app builds with one component per config key, and every label switches language."""

from __future__ import annotations

from pathlib import Path

from tunesmith.webui import form
from tunesmith.webui.i18n import TEXT, t


def test_every_ui_text_exists_in_both_languages_with_the_same_placeholders() -> None:
    import string

    for key, (en, zh) in TEXT.items():
        assert en.strip() and zh.strip(), key
        names = [{n for _, n, _, _ in string.Formatter().parse(s) if n} for s in (en, zh)]
        assert names[0] == names[1], key
    assert t("started", "zh", id="0001") == "已启动任务 0001。"


def test_app_has_every_config_field_and_translates_them(tmp_path: Path) -> None:
    import gradio as gr

    from tunesmith.webui.app import build
    from tunesmith.webui.jobs import JobManager
    from tunesmith.webui.ui import Context, updates_for

    ctx = Context(JobManager(tmp_path / "jobs"), tmp_path)
    assert isinstance(build(ctx), gr.Blocks)
    assert sorted(ctx.fields) == sorted(f.key for f in form.FIELDS)
    ids = [c.elem_id for c in ctx.fields.values()]
    assert len(ids) == len(set(ids)) == len(form.FIELDS)
    zh = dict(zip([id(c) for c, _ in ctx.translated], updates_for(ctx.translated, "zh")))
    lr = ctx.fields["learning_rate"]
    assert "峰值学习率" in zh[id(lr)]["info"]
    labels = [u.get("label") for u in zh.values() if u.get("label")]
    assert "训练" in labels and "对话" in labels and "导出" in labels
    en = updates_for(ctx.translated, "en")
    assert all(u for u in en), "every registered component gets an update"
