"""The Chat tab: a streaming chat with the base model, a run's adapter, or a merged folder."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from tunesmith.config import field_help
from tunesmith.config.schema import DEFAULT_MODEL
from tunesmith.data.media import IMAGE_PLACEHOLDER
from tunesmith.data.templates import TEMPLATES
from tunesmith.model.generate import generation_settings
from tunesmith.utils.errors import TunesmithError
from tunesmith.webui import chat
from tunesmith.webui.i18n import t
from tunesmith.webui.ui import Context

KINDS = ("base", "adapter", "merged")


def kind_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(f"kind_{k}", lang), k) for k in KINDS]


def _target(kind: str, model: str, adapter: str) -> tuple[str, str | None]:
    """(model, adapter) to load for the chosen kind."""
    if kind == "adapter":
        if not adapter:
            raise gr.Error("adapter?")
        return model or DEFAULT_MODEL, adapter
    return model or DEFAULT_MODEL, None


def _messages(history: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [m for user, reply in history for m in ({"role": "user", "content": user},
                                                   {"role": "assistant", "content": reply})]


class ChatTab:
    """Model picker, generation settings, the chat itself."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _setting(self, key: str, **kw: Any) -> Any:
        """A generation setting labelled by its config key, with the schema's help text."""
        comp = gr.Slider(label=key, info=field_help(key, self.ctx.lang), elem_id=f"chat-{key}", **kw)
        return self.ctx.tr(comp, info=lambda lang: field_help(key, lang))

    def draw(self) -> None:
        ctx = self.ctx
        runs = ctx.runs()
        with gr.Row(equal_height=True):
            self.kind = ctx.tr(gr.Radio(kind_choices(ctx.lang), value="adapter" if runs else "base",
                                        label=ctx.text("chat_model_kind"), elem_id="chat-kind", scale=4),
                               label="chat_model_kind", choices=kind_choices)
            self.model = ctx.tr(gr.Dropdown([DEFAULT_MODEL], value=DEFAULT_MODEL, allow_custom_value=True,
                                            label=ctx.text("chat_model"), elem_id="chat-model", scale=3),
                                label="chat_model")
            self.adapter = ctx.tr(gr.Dropdown(runs, value=runs[0] if runs else None, allow_custom_value=True,
                                              label=ctx.text("chat_adapter"), elem_id="chat-adapter", scale=3),
                                  label="chat_adapter")
        with gr.Row():
            self.load_btn = ctx.tr(gr.Button(ctx.text("load_model"), elem_id="chat-load"), value="load_model")
        self.status = gr.Markdown(elem_id="chat-status")
        with gr.Row():
            with gr.Column(scale=3):
                self.chatbot = ctx.tr(gr.Chatbot(label=ctx.text("chatbot"), height=420, elem_id="chatbot"),
                                      label="chatbot")
                with gr.Row(equal_height=True):
                    self.message = ctx.tr(gr.Textbox(label=ctx.text("message"), scale=5, lines=1,
                                                     elem_id="chat-message"), label="message")
                    self.send = ctx.tr(gr.Button(ctx.text("send"), variant="primary", scale=1, elem_id="chat-send"),
                                       value="send")
                    self.clear = ctx.tr(gr.Button(ctx.text("clear"), scale=1, elem_id="chat-clear"), value="clear")
                self.image = ctx.tr(gr.Image(type="filepath", label=ctx.text("chat_image"), height=160,
                                             elem_id="chat-image"), label="chat_image")
            with gr.Column(scale=2):
                self.template = gr.Dropdown(["auto", *TEMPLATES], value="auto", label="template",
                                            info=field_help("template", ctx.lang), elem_id="chat-template")
                ctx.tr(self.template, info=lambda lang: field_help("template", lang))
                self.system = ctx.tr(gr.Textbox(label=ctx.text("system_prompt"), lines=2, elem_id="chat-system"),
                                     label="system_prompt")
                self.max_new_tokens = self._setting("max_new_tokens", minimum=1, maximum=1024, step=1, value=128)
                self.temperature = self._setting("temperature", minimum=0.0, maximum=2.0, step=0.05, value=0.0)
                self.top_p = self._setting("top_p", minimum=0.05, maximum=1.0, step=0.05, value=1.0)
                self.repetition_penalty = self._setting("repetition_penalty", minimum=1.0, maximum=2.0, step=0.05,
                                                        value=1.0)
        self.history = gr.State([])
        self.images = gr.State([])  # the pictures of earlier turns (vision models)

    def _load(self, kind: str, model: str, adapter: str, template: str, lang: str) -> str:
        name, adapter_path = _target(kind, model, adapter)
        try:
            if adapter_path:
                self.ctx.paths.resolve(adapter_path, "adapter")  # inside --workdir
            loaded = chat.load(name, adapter_path, template)
        except TunesmithError as exc:
            raise gr.Error(str(exc)) from exc
        return t("model_loaded", lang, **{k: f"`{v}`" for k, v in chat.describe(loaded).items()})

    def _send(self, message: str, history: list[tuple[str, str]], kind: str, model: str, adapter: str,
              template: str, system: str, max_new_tokens: float, temperature: float, top_p: float,
              repetition_penalty: float, lang: str, image: str | None = None, images: list[str] | None = None,
              ) -> Iterator[tuple[Any, ...]]:
        images = list(images or [])
        if not message.strip():
            yield gr.update(), history, "", gr.update(), images, gr.update()
            return
        attach = [image] if image else []
        if attach and IMAGE_PLACEHOLDER not in message:  # kept in the history, where the picture was shown
            message = f"{IMAGE_PLACEHOLDER}\n{message}"
        status = self._load(kind, model, adapter, template, lang)
        loaded = chat.load(*_target(kind, model, adapter), template)
        settings, _ = generation_settings(None, loaded.model, max_new_tokens=int(max_new_tokens),
                                          temperature=float(temperature), top_p=float(top_p),
                                          repetition_penalty=float(repetition_penalty))  # the form's values win
        reply = ""
        try:
            for reply in chat.stream_reply(loaded, history, message, system=system, settings=settings,
                                           images=attach, earlier_images=images):
                yield _messages([*history, (message, reply)]), history, "", status, images, gr.update()
        except TunesmithError as exc:  # e.g. an image for a text-only model
            raise gr.Error(str(exc)) from exc
        new_history = [*history, (message, reply)]
        yield _messages(new_history), new_history, "", status, [*images, *attach], None

    def wire(self, lang: Any) -> None:
        pick = [self.kind, self.model, self.adapter, self.template]
        self.load_btn.click(self._load, [*pick, lang], self.status)
        send_in = [self.message, self.history, *pick, self.system, self.max_new_tokens, self.temperature,
                   self.top_p, self.repetition_penalty, lang, self.image, self.images]
        send_out = [self.chatbot, self.history, self.message, self.status, self.images, self.image]
        self.send.click(self._send, send_in, send_out)
        self.message.submit(self._send, send_in, send_out)
        self.clear.click(lambda: ([], [], []), None, [self.chatbot, self.history, self.images])
