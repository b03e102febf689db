"""Jinja chat templates: a model's own template as a tunesmith template, and built-ins as Jinja.

``JinjaTemplate`` trains with the model's own ``chat_template``. The loss must fall on each assistant
reply and its end-of-turn marker only. With ``{% generation %}`` markers the template says where
replies are; without them the conversation is rendered whole, and each reply starts where the
generation prompt for the messages before it ends (both rendered by the model's template) and
ends after the first end-of-turn marker (the EOS token or a known end marker) that follows. When
a template writes no end marker after a reply (GLM-style templates end a turn with the next
``<|user|>``), the final reply gets the tokenizer's EOS so the model still learns to stop.

``template_to_jinja`` writes a built-in template as an HF ``chat_template`` that renders exactly
what ``Template.render`` renders (reasoning, ``enable_thinking`` and the system rules included).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tunesmith.data.records import Message
from tunesmith.data.templates import TEMPLATES, Template
from tunesmith.utils.errors import DataFormatError

_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")
# end-of-turn markers of the families tunesmith knows; the tokenizer's EOS is always one too
KNOWN_END_MARKERS = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|end|>", "<｜end▁of▁sentence｜>",
                     "</s>", "<|endoftext|>", "<|user|>")


def _chat(messages: list[Message], system: str | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for m in messages:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.role == "assistant" and m.reasoning is not None:
            d["reasoning_content"] = m.reasoning
        out.append(d)
    return out


@dataclass(frozen=True)
class JinjaTemplate:
    """The model's own chat template, aligned so only replies (and their end markers) are trained."""

    source: str
    special_tokens: dict[str, str] = field(default_factory=dict)  # bos_token, eos_token, ... as the model has them
    stop_words: tuple[str, ...] = ()
    name: str = "model"  # recorded in run folders; 'auto' resolves to it again from the same model
    enable_thinking: bool = True

    def render_chat(self, chat: list[dict[str, Any]], add_generation_prompt: bool, enable_thinking: bool,
                    track: bool = False) -> tuple[str, list[tuple[int, int]]]:
        from transformers.utils.chat_template_utils import render_jinja_template

        try:
            texts, spans = render_jinja_template([chat], chat_template=self.source,
                                                 add_generation_prompt=add_generation_prompt,
                                                 return_assistant_tokens_mask=track,
                                                 enable_thinking=enable_thinking, **self.special_tokens)
        except Exception as exc:  # jinja raises TemplateError / UndefinedError / TypeError for bad input
            raise DataFormatError(f"the model's chat template failed on this conversation: {exc}",
                                  hint=f"set 'template' to a built-in: {', '.join(TEMPLATES)}") from exc
        return texts[0], (spans[0] if spans else [])

    def _end_of_reply(self, text: str, start: int, limit: int) -> int | None:
        hits = [(text.find(w, start, limit), w) for w in self.stop_words if w]
        ends = [h + len(w) for h, w in hits if h >= 0]
        return min(ends) if ends else None

    def segments(self, messages: list[Message], system: str | None, bos: str | None,
                 eos: str | None = None, add_generation_prompt: bool = False,
                 enable_thinking: bool | None = None) -> list[tuple[str, bool]]:
        """(text, is_assistant) segments of the model's own rendering (see the module docstring)."""
        enable_thinking = self.enable_thinking if enable_thinking is None else enable_thinking
        chat = _chat(messages, system)
        full, marked = self.render_chat(chat, add_generation_prompt, enable_thinking,
                                        track=bool(_GENERATION_TAG.search(self.source)))
        if add_generation_prompt:
            return [(full, False)]
        spans = marked or self._aligned_spans(chat, full, enable_thinking)
        out: list[tuple[str, bool]] = []
        pos = 0
        for start, end in spans:
            out += [(full[pos:start], False), (full[start:end], True)]
            pos = end
        tail = full[pos:]
        if spans and self._end_of_reply(full, spans[-1][0], spans[-1][1]) is None and not tail.strip():
            out.append((eos or self.special_tokens.get("eos_token", ""), True))  # teach the model to stop
        out.append((tail, False))
        return [(t, a) for t, a in out if t]

    def _aligned_spans(self, chat: list[dict[str, Any]], full: str, enable_thinking: bool) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        replies = [i for i, m in enumerate(chat) if m["role"] == "assistant"]
        for n, i in enumerate(replies):
            prompt, _ = self.render_chat(chat[:i], True, enable_thinking)
            bare, _ = self.render_chat(chat[:i], False, enable_thinking) if i else ("", [])
            start = _common_prefix(prompt, full)
            # the full rendering may lack only what the template writes for generation alone (R1's "<think>")
            if start < _common_prefix(prompt, bare) or (spans and start < spans[-1][1]):
                raise DataFormatError(
                    f"the model's chat template renders turn {i + 1} differently when it is the last one, so "
                    "the assistant reply cannot be located in the rendered conversation",
                    hint=f"set 'template' to the built-in for this family ({', '.join(TEMPLATES)})")
            limit = len(full)
            if n + 1 < len(replies):  # the next reply's prompt bounds this one
                nxt, _ = self.render_chat(chat[: replies[n + 1]], True, enable_thinking)
                limit = _common_prefix(nxt, full)
            end = self._end_of_reply(full, start, limit)
            if end is None:  # no end marker: the reply ends where the conversation so far ends
                upto, _ = self.render_chat(chat[: i + 1], False, enable_thinking)
                end = max(start, min(limit, len(full[:_common_prefix(upto, full)].rstrip())))
            spans.append((start, end))
        return spans


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


_PROBES = [  # (messages, system, enable_thinking)
    ([Message("user", "Hi there")], None, True),
    ([Message("user", "What is 2+3?")], "Answer briefly.", True),
    ([Message("user", "What is 2+3?"), Message("assistant", "5"), Message("user", "And 2+4?")], None, True),
    ([Message("user", "Q1"), Message("assistant", "<think>\nR1\n</think>\n\nA1"), Message("user", "Q2")],
     "Be kind.", True),
    ([Message("user", "Hi there")], None, False),
]


def _renders_like(t: Template, jt: JinjaTemplate) -> bool:
    """Does the built-in render every probe prompt exactly as the model's template does?"""
    bos, eos = jt.special_tokens.get("bos_token"), jt.special_tokens.get("eos_token")
    try:
        for msgs, system, thinking in _PROBES:
            want, _ = jt.render_chat(_chat(msgs, system), True, thinking)
            if t.render(msgs, system, bos=bos, eos=eos, add_generation_prompt=True, enable_thinking=thinking) != want:
                return False
        full, _ = jt.render_chat(_chat(_PROBES[2][0] + [Message("assistant", "6")], None), False, True)
    except DataFormatError:
        return False
    end = t.stop_words[0] if t.stop_words else eos
    return bool(end) and end in full


def from_model_template(source: str, tokenizer: Any, fallback: Template) -> Template | JinjaTemplate:
    """The built-in that reproduces the model's own template, else the model's template itself."""
    special = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
    vocab = tokenizer.get_vocab()
    stops = tuple(w for w in KNOWN_END_MARKERS if w in vocab and w in source)
    eos = special.get("eos_token")
    if eos and eos not in stops:
        stops = (eos, *stops)
    jt = JinjaTemplate(source, special, stops)
    for t in [fallback, *[t for t in TEMPLATES.values() if t is not fallback]]:
        if _renders_like(t, jt):
            return t
    return jt


# ---- built-in templates as Jinja ------------------------------------------------------------------

def _lit(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _expr(s: str, values: dict[str, str]) -> str:
    """A Jinja expression concatenating the literal parts of ``s`` and the given placeholders."""
    parts = []
    for piece in re.split(r"(\{\w+\})", s):
        if not piece:
            continue
        name = piece[1:-1]
        parts.append(values[name] if piece.startswith("{") and name in values else _lit(piece))
    return " + ".join(parts) or "''"


_TOKENS = {"bos": "bos_token", "eos": "eos_token"}


def _assistant_jinja(t: Template) -> str:
    """Jinja that writes one assistant message ``m`` (``final``: after the last user message)."""
    trim = "|trim" if t.trim in ("all", "assistant") else ""
    reply = "{{- " + _expr(t.assistant + t.next_turn_marker, {**_TOKENS, "content": "body"}) + " -}}"
    split = ("{%- set r = none -%}{%- set a = m['content'] -%}{%- set raw = a.split('</think>')[-1] -%}"
             "{%- if m['reasoning_content'] is string -%}{%- set r = m['reasoning_content'] -%}"
             "{%- elif '</think>' in a -%}{%- set r = a.split('</think>')[0].rstrip('\\n').split('<think>')[-1]"
             ".lstrip('\\n') -%}"
             "{%- set a = raw.lstrip('\\n') -%}{%- endif -%}")
    th = t.thinking
    if th is None:
        body = ("{%- if r is none -%}{%- set body = a" + trim + " -%}{%- else -%}"
                "{%- set body = ('<think>\\n' + r + '\\n</think>\\n\\n' + a)" + trim + " -%}{%- endif -%}")
        return split + body + reply
    block = _expr(th.block, {"reasoning": "r.strip('\\n')"})
    final = ("{{- " + _lit(th.prompt_open) + " -}}"
             "{%- if r is not none -%}{%- set body = " + block + " + a.lstrip('\\n') -%}"
             + ("{%- elif enable_thinking is not defined or enable_thinking -%}" if th.switch else "{%- else -%}")
             + "{%- set body = " + _lit(th.empty) + " + a.lstrip('\\n') -%}"
             + ("{%- else -%}{{- " + _lit(th.empty) + " -}}{%- set body = a.lstrip('\\n') -%}" if th.switch else "")
             + "{%- endif -%}")
    history = "raw" if th.history_raw else "a"
    return (split + "{%- if final -%}" + final + "{%- else -%}{%- set body = " + history + trim + " -%}{%- endif -%}"
            + reply)


def template_to_jinja(t: Template | JinjaTemplate) -> str:
    """An HF ``chat_template`` (Jinja) that renders exactly what the template renders."""
    if isinstance(t, JinjaTemplate):
        return t.source
    trim = "|trim" if t.trim == "all" else ""
    sys_default = _lit(t.default_system) if t.default_system else "none"
    out = [] if t.enable_thinking or t.thinking is None else [
        "{%- if enable_thinking is not defined -%}{%- set enable_thinking = false -%}{%- endif -%}"]
    out += [
        f"{{%- set system = {sys_default} -%}}{{%- set msgs = messages -%}}",
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{%- set system = messages[0]['content'] -%}{%- set msgs = messages[1:] -%}{%- endif -%}",
        "{%- set ns = namespace(last_user=-1, first_user=-1) -%}{%- for m in msgs -%}"
        "{%- if m['role'] != 'assistant' -%}{%- set ns.last_user = loop.index0 -%}"
        "{%- if ns.first_user < 0 -%}{%- set ns.first_user = loop.index0 -%}{%- endif -%}{%- endif -%}{%- endfor -%}",
    ]
    if t.prefix:
        out.append("{{- " + _expr(t.prefix, _TOKENS) + " -}}")
    if not t.system_in_user:
        cond = "true" if t.system_always else "system"
        out.append("{%- if " + cond + " -%}{{- " + _expr(t.system, {"content": f"(system or ''){trim}"})
                   + " -}}{%- endif -%}")
    carrier = "ns.first_user" if t.system_turn == "first" else "ns.last_user"
    out.append("{%- for m in msgs -%}{%- set final = loop.index0 > ns.last_user -%}"
               "{%- if m['role'] == 'assistant' -%}")
    out.append(_assistant_jinja(t))
    if t.separator:
        out.append("{{- " + _lit(t.separator) + " -}}")
    out.append("{%- else -%}{%- set c = m['content']" + trim + " -%}")
    if t.system_in_user:
        merged = _expr(t.system_in_user, {"system": "system", "content": "c"})
        out.append("{%- if loop.index0 == " + carrier + " and system -%}{%- set c = " + merged + " -%}{%- endif -%}")
    out.append("{%- set u = " + _expr(t.user, {"content": "c"}) + " -%}")
    if t.next_turn_marker:
        n = len(t.next_turn_marker)
        out.append("{%- if not loop.first and msgs[loop.index0 - 1]['role'] == 'assistant' and u.startswith("
                   + _lit(t.next_turn_marker) + ") -%}{%- set u = u[" + str(n) + ":] -%}{%- endif -%}")
    out.append("{{- u -}}{%- endif -%}{%- endfor -%}")
    gen = ""
    if t.thinking is not None:
        gen = "{{- " + _lit(t.thinking.prompt_open) + " -}}"
        if t.thinking.switch:
            gen += "{%- if enable_thinking is defined and not enable_thinking -%}{{- " + _lit(t.thinking.empty) \
                + " -}}{%- endif -%}"
    suffix = "{{- " + _expr(t.suffix, _TOKENS) + " -}}" if t.suffix else ""
    if gen or suffix:
        out.append("{%- if add_generation_prompt -%}" + gen + "{%- elif msgs -%}" + suffix + "{%- endif -%}")
    return "".join(out)
