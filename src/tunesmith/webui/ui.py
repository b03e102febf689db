"""What the tabs share: the config form's fields, the language switch, and the job manager.

Every translatable component is registered with :meth:`Context.tr` (UI chrome from ``i18n``) or
:meth:`Context.field` (a config key: its label is the key, its help comes from the schema), so one
language switch can update them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from tunesmith.config import field_help
from tunesmith.config.schema import DEFAULT_MODEL
from tunesmith.data.templates import TEMPLATES
from tunesmith.webui import form
from tunesmith.webui.i18n import TEXT, t
from tunesmith.webui.jobs import JobManager
from tunesmith.webui.runs import dataset_names, find_runs
from tunesmith.webui.security import PathPolicy

Props = dict[str, str | Callable[[str], Any]]  # component property -> i18n key, or a function of the language

DATASET_KEYS = ("dataset", "eval_dataset", "test_dataset", "replay_dataset")
RUN_KEYS = ("adapter_name_or_path", "continue_from")


@dataclass
class Context:
    """State shared while the app is being built."""

    jobs: JobManager
    workdir: Path
    lang: str = "en"
    fields: dict[str, Any] = field(default_factory=dict)  # config key -> component, in FIELDS order at the end
    translated: list[tuple[Any, Props]] = field(default_factory=list)
    shared: dict[str, Any] = field(default_factory=dict)  # components one tab hands to another
    allow_outside_workdir: bool = False  # --allow-outside-workdir: typed paths may leave workdir

    @property
    def paths(self) -> PathPolicy:
        """Where typed paths may point (security.py)."""
        return PathPolicy(self.workdir, self.allow_outside_workdir)

    def tr(self, component: Any, **props: str | Callable[[str], Any]) -> Any:
        """Register a component whose properties are UI text (i18n keys or functions of the language)."""
        self.translated.append((component, props))
        return component

    def text(self, key: str) -> str:
        return t(key, self.lang)

    def runs(self) -> list[str]:
        """Run folders to offer: under saves/ and every job's output_dir."""
        extra = [str(j.output_dir) for j in self.jobs.jobs()]
        return find_runs(self.workdir / "saves", extra=extra)

    # --- config fields -------------------------------------------------------------------------

    def field(self, key: str) -> Any:
        """The form component for a config key (created once; label = key, help from the schema)."""
        spec = form.FIELD_BY_KEY[key]
        value = form.to_form(spec, spec.default)
        common = {"label": key, "info": field_help(key, self.lang), "elem_id": f"field-{key}"}
        if key in DATASET_KEYS:
            comp = gr.Dropdown(choices=dataset_names(self.workdir / "data"), value=spec.default, multiselect=True,
                               allow_custom_value=True, **common)
        elif key == "model_name_or_path":
            comp = gr.Dropdown(choices=[DEFAULT_MODEL], value=value, allow_custom_value=True, **common)
        elif key == "template":
            comp = gr.Dropdown(choices=["auto", *TEMPLATES], value=value, allow_custom_value=True, **common)
        elif key in RUN_KEYS:
            comp = gr.Dropdown(choices=[""], value=value, allow_custom_value=True, **common)
        elif spec.kind == "bool":
            comp = gr.Checkbox(value=value, **common)
        elif spec.kind == "tristate":
            comp = gr.Radio(choices=list(form.TRISTATE), value=value, **common)
        elif spec.kind == "choice":
            comp = gr.Dropdown(choices=list(spec.choices), value=value, **common)
        elif spec.kind in ("int", "float") and not spec.optional:
            comp = gr.Number(value=value, precision=0 if spec.kind == "int" else None, **common)
        else:
            comp = gr.Textbox(value=value, lines=1, max_lines=1,
                              placeholder=self.text("empty_default") if spec.optional else None, **common)
        self.fields[key] = comp
        props: Props = {"info": lambda lang, k=key: field_help(k, lang)}
        if spec.optional and isinstance(comp, gr.Number | gr.Textbox):
            props["placeholder"] = "empty_default"
        self.tr(comp, **props)
        return comp

    def group(self, group: str, *, columns: int = 2, open: bool = True) -> None:
        """An accordion with every field of a config group, ``columns`` per row."""
        keys = [f.key for f in form.FIELDS if f.group == group]
        label = f"group_{group}" if f"group_{group}" in TEXT else (lambda lang: group)
        with self.tr(gr.Accordion(group if callable(label) else self.text(label), open=open, elem_id=f"group-{group}"),
                     label=label):
            for start in range(0, len(keys), columns):
                with gr.Row(equal_height=True):
                    for key in keys[start:start + columns]:
                        self.field(key)

    def field_list(self) -> list[Any]:
        """The form's components in FIELDS order (every key must have been drawn)."""
        missing = [f.key for f in form.FIELDS if f.key not in self.fields]
        if missing:  # pragma: no cover - a new schema group that no tab draws
            raise RuntimeError(f"config keys without a form field: {missing}")
        return [self.fields[f.key] for f in form.FIELDS]


def updates_for(translated: list[tuple[Any, Props]], lang: str) -> list[Any]:
    """One gr.update per registered component, with its text in ``lang``."""
    out = []
    for _, props in translated:
        values = {name: (v(lang) if callable(v) else t(v, lang)) for name, v in props.items()}
        out.append(gr.update(**values))
    return out
