"""Chat templates: one definition renders training data, chat prompts and the exported Jinja template.

A template is a few format strings. Training tokenizes a conversation segment by segment so the
tokens of each assistant reply (and its end-of-turn marker, so the model learns to stop) are known
exactly; chat and serving use the very same function for prompts; export writes an equivalent Jinja
``chat_template`` and a check compares the two token by token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunesmith.data.records import Message
from tunesmith.utils.errors import ConfigError


def _fill(fmt: str, **values: str) -> str:
    """Replace {name} placeholders without interpreting braces in user text."""
    for key, value in values.items():
        fmt = fmt.replace("{" + key + "}", value)
    return fmt


@dataclass(frozen=True)
class Template:
    """How turns are written for one model family."""

    name: str
    user: str  # with {content}; ends with the assistant header so a prompt is ready to generate
    assistant: str  # with {content}; the end-of-turn marker is part of it (and trained)
    system: str = "{content}"  # a separate system turn; unused when system_in_user is set
    separator: str = ""  # between an assistant turn and the next user turn (not trained)
    prefix: str = ""  # once at the start (usually BOS); "{bos}" is replaced by tokenizer.bos_token
    system_in_user: str | None = None  # e.g. "{system}\n\n{content}" for templates without a system role
    stop_words: tuple[str, ...] = ()  # end-of-turn markers; their ids join eos_token_id
    default_system: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def render_prefix(self, bos: str | None) -> str:
        return self.prefix.replace("{bos}", bos or "")

    def segments(self, messages: list[Message], system: str | None, bos: str | None,
                 eos: str | None = None, add_generation_prompt: bool = False) -> list[tuple[str, bool]]:
        """Render a conversation as (text, is_assistant) segments in order.

        The conversation is messages alternating user/assistant (tool turns count as user). With
        ``add_generation_prompt`` it must end with a user turn and the result ends with the assistant
        header, ready for generation.
        """
        system = system if system is not None else self.default_system
        out: list[tuple[str, bool]] = []
        head = self.render_prefix(bos)
        if system and not self.system_in_user:
            head += _fill(self.system, content=system)
        first_user = True
        for i, m in enumerate(messages):
            if m.role == "assistant":
                out.append((_fill(self.assistant, content=m.content, eos=eos or ""), True))
                if i + 1 < len(messages):
                    out.append((self.separator, False))
                continue
            content = m.content
            if first_user and system and self.system_in_user:
                content = _fill(self.system_in_user, system=system, content=content)
            first_user = False
            out.append((head + _fill(self.user, content=content), False))
            head = ""
        if head:  # no user turn at all
            out.insert(0, (head, False))
        return [(t, a) for t, a in out if t]

    def render(self, messages: list[Message], system: str | None = None, bos: str | None = None,
               eos: str | None = None, add_generation_prompt: bool = False) -> str:
        """The whole conversation as one string."""
        return "".join(t for t, _ in self.segments(messages, system, bos, eos, add_generation_prompt))


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in [
        Template(
            name="gemma",
            prefix="{bos}",
            user="<start_of_turn>user\n{content}<end_of_turn>\n<start_of_turn>model\n",
            assistant="{content}<end_of_turn>",
            separator="\n",
            system_in_user="{system}\n\n{content}",
            stop_words=("<end_of_turn>",),
            aliases=("gemma2", "gemma3", "gemma3_text"),
        ),
        Template(
            name="chatml",
            system="<|im_start|>system\n{content}<|im_end|>\n",
            user="<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n",
            assistant="{content}<|im_end|>",
            separator="\n",
            stop_words=("<|im_end|>",),
            aliases=("qwen", "qwen2", "qwen2.5", "qwen3"),
        ),
        Template(
            name="llama3",
            prefix="{bos}",
            system="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
            user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            assistant="{content}<|eot_id|>",
            stop_words=("<|eot_id|>",),
            aliases=("llama", "llama3.1", "llama3.2"),
        ),
        Template(
            name="default",
            prefix="{bos}",
            system="System: {content}\n",
            user="Human: {content}\nAssistant: ",
            assistant="{content}{eos}",
            separator="\n",
            aliases=("plain", "empty"),
        ),
    ]
}
_ALIASES = {alias: t.name for t in TEMPLATES.values() for alias in t.aliases}

# model_type (config.json) -> template, for template: auto
MODEL_TYPE_TEMPLATES = {
    "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3_text": "gemma",
    "qwen2": "chatml", "qwen3": "chatml", "qwen2_moe": "chatml", "qwen3_moe": "chatml",
    "llama": "llama3",
}


def get_template(name: str, model_type: str | None = None, tokenizer: Any = None) -> Template:
    """Resolve a template name ('auto' picks by model type, then by the tokenizer's special tokens)."""
    if name == "auto":
        if model_type in MODEL_TYPE_TEMPLATES:
            chosen = MODEL_TYPE_TEMPLATES[model_type]
            if chosen == "llama3" and tokenizer is not None and "<|eot_id|>" not in tokenizer.get_vocab():
                return TEMPLATES["default"]
            return TEMPLATES[chosen]
        if tokenizer is not None:
            vocab = tokenizer.get_vocab()
            for t in ("gemma", "chatml", "llama3"):
                if all(w in vocab for w in TEMPLATES[t].stop_words):
                    return TEMPLATES[t]
        return TEMPLATES["default"]
    key = _ALIASES.get(name, name)
    if key not in TEMPLATES:
        import difflib

        close = difflib.get_close_matches(name, list(TEMPLATES) + list(_ALIASES), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError([f"'template': unknown template {name!r}{hint} (choose from auto, "
                           f"{', '.join(TEMPLATES)})"])
    return TEMPLATES[key]


def _jinja_expr(s: str, values: dict[str, str]) -> str:
    """A Jinja expression concatenating the literal parts of ``s`` and the given placeholders."""
    import re

    parts = []
    for piece in re.split(r"(\{\w+\})", s):
        if not piece:
            continue
        name = piece[1:-1]
        if piece.startswith("{") and name in values:
            parts.append(values[name])
        else:
            lit = piece.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
            parts.append(f"'{lit}'")
    return " + ".join(parts) or "''"


def to_jinja(t: Template) -> str:
    """An HF ``chat_template`` (Jinja) that renders exactly what ``Template.render`` renders."""
    tokens = {"bos": "bos_token", "eos": "eos_token"}
    sys_default = _jinja_expr(t.default_system, {}) if t.default_system else "none"
    out = [
        f"{{%- set system = {sys_default} -%}}{{%- set msgs = messages -%}}",
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{%- set system = messages[0]['content'] -%}{%- set msgs = messages[1:] -%}{%- endif -%}",
    ]
    if t.prefix:
        out.append("{{- " + _jinja_expr(t.prefix, tokens) + " -}}")
    if not t.system_in_user:
        out.append("{%- if system -%}{{- " + _jinja_expr(t.system, {"content": "system"}) + " -}}{%- endif -%}")
    out.append("{%- for m in msgs -%}{%- if m['role'] == 'assistant' -%}")
    out.append("{{- " + _jinja_expr(t.assistant, {**tokens, "content": "m['content']"}) + " -}}")
    if t.separator:
        out.append("{%- if not loop.last -%}{{- " + _jinja_expr(t.separator, {}) + " -}}{%- endif -%}")
    out.append("{%- else -%}")
    user = _jinja_expr(t.user, {"content": "m['content']"})
    if t.system_in_user:
        merged = "(" + _jinja_expr(t.system_in_user, {"system": "system", "content": "m['content']"}) + ")"
        with_sys = _jinja_expr(t.user, {"content": merged})
        out.append("{%- if loop.first and system -%}{{- " + with_sys + " -}}{%- else -%}{{- " + user
                   + " -}}{%- endif -%}")
    else:
        out.append("{{- " + user + " -}}")
    out.append("{%- endif -%}{%- endfor -%}")
    return "".join(out)
