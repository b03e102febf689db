"""Chat templates: one definition renders training data, chat prompts and the exported Jinja template.

A built-in template is a few format strings plus the rules of its family's official Jinja template
(where the system prompt goes, whether contents are trimmed, how reasoning is written). Training
tokenizes a conversation segment by segment so the tokens of each assistant reply (and its
end-of-turn marker, so the model learns to stop) are known exactly; chat and serving use the very
same function for prompts; export writes an equivalent Jinja ``chat_template`` (``data.jinja``) and a
check compares the two token by token. Each built-in is tested token for token against its
family's official template (tests/data/chat_templates). ``template: auto`` uses the model's own
template (``data.jinja.JinjaTemplate``) when the tokenizer has one that no built-in reproduces.
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


def split_reasoning(m: Message) -> tuple[str | None, str]:
    """(reasoning, answer) of an assistant message: its ``reasoning`` field, or a leading
    ``<think>...</think>`` block in the content (read the way Qwen3's official template reads it)."""
    if m.reasoning is not None:
        return m.reasoning, m.content
    if "</think>" in m.content:
        parts = m.content.split("</think>")
        return parts[0].rstrip("\n").split("<think>")[-1].lstrip("\n"), parts[-1].lstrip("\n")
    return None, m.content


@dataclass(frozen=True)
class Thinking:
    """How a reasoning family writes its thoughts before the answer."""

    block: str = "<think>\n{reasoning}\n</think>\n\n"  # before the answer (trained)
    empty: str = "<think>\n\n</think>\n\n"  # the block with no reasoning
    prompt_open: str = ""  # written after the assistant header of every generation prompt (R1: "<think>\n")
    switch: bool = True  # honours enable_thinking (false: the empty block goes into the prompt)
    history_raw: bool = False  # earlier turns keep the text after </think> as is (R1), not left-stripped


@dataclass(frozen=True)
class Template:
    """How turns are written for one model family."""

    name: str
    user: str  # with {content}; ends with the assistant header so a prompt is ready to generate
    assistant: str  # with {content}; the end-of-turn marker is part of it (and trained)
    system: str = "{content}"  # a separate system turn; unused when system_in_user is set
    separator: str = ""  # after every assistant turn (not trained), e.g. the newline after <|im_end|>
    prefix: str = ""  # once at the start (usually BOS); "{bos}" is replaced by tokenizer.bos_token
    system_in_user: str | None = None  # e.g. "{system}\n\n{content}" for templates without a system role
    system_turn: str = "first"  # with system_in_user: which user turn carries it ("first" or "last")
    system_always: bool = False  # the system turn is written even without a system prompt (Llama 3.1)
    suffix: str = ""  # after a finished conversation (not a prompt), e.g. Phi-3's "{eos}"; not trained
    next_turn_marker: str = ""  # GLM-4: a turn ends where the next user turn's marker starts (trained)
    trim: str = ""  # the official template strips whitespace around messages: "all" or "assistant"
    thinking: Thinking | None = None
    stop_words: tuple[str, ...] = ()  # end-of-turn markers; their ids join eos_token_id
    default_system: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)
    enable_thinking: bool = True  # the config's enable_thinking; segments() uses it unless told otherwise

    def render_prefix(self, bos: str | None) -> str:
        return self.prefix.replace("{bos}", bos or "")

    def _text(self, s: str, role: str = "user") -> str:
        return s.strip() if self.trim == "all" or (self.trim == "assistant" and role == "assistant") else s

    def _assistant(self, m: Message, final: bool, eos: str | None,
                   enable_thinking: bool) -> tuple[str, str]:
        """(untrained text before the reply, trained reply) of one assistant turn."""
        reasoning, answer = split_reasoning(m)
        before = ""
        t = self.thinking
        if t is None:
            body = answer if reasoning is None else f"<think>\n{reasoning}\n</think>\n\n{answer}"
            body = self._text(body, "assistant")
        elif not final:  # the official templates drop the reasoning of earlier turns
            raw = m.content.split("</think>")[-1] if t.history_raw else answer
            body = self._text(raw, "assistant")
        else:
            before = t.prompt_open
            if reasoning is not None:
                body = _fill(t.block, reasoning=reasoning.strip("\n")) + answer.lstrip("\n")
            elif enable_thinking or not t.switch:
                body = t.empty + answer.lstrip("\n")
            else:
                before, body = before + t.empty, answer.lstrip("\n")
        reply = _fill(self.assistant, content=body, eos=eos or "") + self.next_turn_marker
        return before, reply

    def _generation_open(self, enable_thinking: bool) -> str:
        t = self.thinking
        if t is None:
            return ""
        return t.prompt_open + (t.empty if t.switch and not enable_thinking else "")

    def segments(self, messages: list[Message], system: str | None, bos: str | None,
                 eos: str | None = None, add_generation_prompt: bool = False,
                 enable_thinking: bool | None = None) -> list[tuple[str, bool]]:
        """Render a conversation as (text, is_assistant) segments in order.

        The conversation is messages alternating user/assistant (tool turns count as user). With
        ``add_generation_prompt`` it must end with a user turn and the result ends with the assistant
        header (and a reasoning family's opening), ready for generation. ``enable_thinking`` false
        puts a reasoning family's empty thought block into the prompt, as Qwen3's template does.
        """
        enable_thinking = self.enable_thinking if enable_thinking is None else enable_thinking
        system = system if system is not None else self.default_system
        out: list[tuple[str, bool]] = []
        head = self.render_prefix(bos)
        if (system or self.system_always) and not self.system_in_user:
            head += _fill(self.system, content=self._text(system or ""))
        users = [i for i, m in enumerate(messages) if m.role != "assistant"]
        carrier = (users[0] if self.system_turn == "first" else users[-1]) if users else -1
        last_user = users[-1] if users else -1
        for i, m in enumerate(messages):
            if m.role == "assistant":
                before, reply = self._assistant(m, i > last_user, eos, enable_thinking)
                out += [(head + before, False), (reply, True), (self.separator, False)]
                head = ""
                continue
            content = self._text(m.content)
            if i == carrier and system and self.system_in_user:
                content = _fill(self.system_in_user, system=system, content=content)
            text = _fill(self.user, content=content)
            if self.next_turn_marker and i and messages[i - 1].role == "assistant":
                text = text.removeprefix(self.next_turn_marker)  # the reply already wrote it
            out.append((head + text, False))
            head = ""
        if head:  # no user turn at all
            out.insert(0, (head, False))
        if add_generation_prompt:
            out.append((self._generation_open(enable_thinking), False))
        elif messages:
            out.append((_fill(self.suffix, eos=eos or ""), False))
        return [(t, a) for t, a in out if t]

    def render(self, messages: list[Message], system: str | None = None, bos: str | None = None,
               eos: str | None = None, add_generation_prompt: bool = False,
               enable_thinking: bool | None = None) -> str:
        """The whole conversation as one string."""
        return "".join(t for t, _ in self.segments(messages, system, bos, eos, add_generation_prompt,
                                                   enable_thinking))


_QWEN_USER = "<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"
_QWEN_SYSTEM = "<|im_start|>system\n{content}<|im_end|>\n"
_PHI3_USER = "<|user|>\n{content}<|end|>\n<|assistant|>\n"

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
            trim="all",
            stop_words=("<end_of_turn>",),
            aliases=("gemma2", "gemma3", "gemma3_text"),
        ),
        Template(
            name="chatml",
            system=_QWEN_SYSTEM, user=_QWEN_USER, assistant="{content}<|im_end|>", separator="\n",
            stop_words=("<|im_end|>",),
        ),
        Template(
            name="qwen",  # Qwen2.5-Instruct
            system=_QWEN_SYSTEM, user=_QWEN_USER, assistant="{content}<|im_end|>", separator="\n",
            default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
            stop_words=("<|im_end|>",),
            aliases=("qwen2.5", "qwen2_5"),
        ),
        Template(
            name="qwen2",  # Qwen2-Instruct
            system=_QWEN_SYSTEM, user=_QWEN_USER, assistant="{content}<|im_end|>", separator="\n",
            default_system="You are a helpful assistant.",
            stop_words=("<|im_end|>",),
        ),
        Template(
            name="qwen3",
            system=_QWEN_SYSTEM, user=_QWEN_USER, assistant="{content}<|im_end|>", separator="\n",
            thinking=Thinking(),
            stop_words=("<|im_end|>",),
        ),
        Template(
            name="deepseek-r1",  # the DeepSeek-R1 distills (Qwen and Llama based)
            prefix="{bos}",
            user="<｜User｜>{content}<｜Assistant｜>",
            assistant="{content}<｜end▁of▁sentence｜>",
            thinking=Thinking(block="{reasoning}\n</think>\n\n", empty="\n</think>\n\n", prompt_open="<think>\n",
                              switch=False, history_raw=True),
            stop_words=("<｜end▁of▁sentence｜>",),
            aliases=("deepseek_r1", "deepseekr1", "r1"),
        ),
        Template(
            name="llama3",  # Llama 3 (8B / 70B Instruct)
            prefix="{bos}",
            system="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
            user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            assistant="{content}<|eot_id|>",
            trim="all",
            stop_words=("<|eot_id|>",),
            aliases=("llama",),
        ),
        Template(
            name="llama3.1",  # Llama 3.1 / 3.3 Instruct: a system turn with the knowledge-cutoff header
            prefix="{bos}",
            system="<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\n{content}<|eot_id|>",
            system_always=True,
            user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            assistant="{content}<|eot_id|>",
            trim="all",
            stop_words=("<|eot_id|>", "<|eom_id|>"),
            aliases=("llama3_1", "llama3.3"),
        ),
        Template(
            name="mistral",  # Mistral-7B-Instruct-v0.3 (and v0.2's [INST] layout)
            prefix="{bos}",
            user="[INST] {content}[/INST]",
            assistant=" {content}{eos}",
            system_in_user="{system}\n\n{content}",
            system_turn="last",
            trim="assistant",
            aliases=("mistral_v3",),
        ),
        Template(
            name="phi3",  # Phi-3 / Phi-3.5 mini / medium
            system="<|system|>\n{content}<|end|>\n", user=_PHI3_USER, assistant="{content}<|end|>",
            separator="\n", suffix="{eos}",
            stop_words=("<|end|>",),
            aliases=("phi", "phi3.5", "phi-3"),
        ),
        Template(
            name="phi4-mini",  # Phi-4-mini-instruct
            system="<|system|>{content}<|end|>", user="<|user|>{content}<|end|><|assistant|>",
            assistant="{content}<|end|>", suffix="{eos}",
            stop_words=("<|end|>",),
            aliases=("phi4_mini",),
        ),
        Template(
            name="phi4",  # Phi-4 (14B)
            system="<|im_start|>system<|im_sep|>{content}<|im_end|>",
            user="<|im_start|>user<|im_sep|>{content}<|im_end|><|im_start|>assistant<|im_sep|>",
            assistant="{content}<|im_end|>",
            stop_words=("<|im_end|>",),
            aliases=("phi-4",),
        ),
        Template(
            name="glm4",  # GLM-4-0414 (9B / 32B): a reply ends where the next <|user|> starts
            prefix="[gMASK]<sop>",
            system="<|system|>\n{content}",
            user="<|user|>\n{content}<|assistant|>",
            assistant="\n{content}",
            next_turn_marker="<|user|>",
            stop_words=("<|user|>", "<|observation|>"),
            aliases=("glm-4", "glm"),
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

# model_type (config.json) -> template, for template: auto when the tokenizer has no chat template
MODEL_TYPE_TEMPLATES = {
    "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3_text": "gemma",
    "qwen2": "qwen", "qwen2_moe": "qwen", "qwen3": "qwen3", "qwen3_moe": "qwen3",
    "llama": "llama3", "mistral": "mistral", "phi3": "phi3", "glm4": "glm4",
}


def _by_model(model_type: str | None, tokenizer: Any) -> Template:
    """The built-in template for a model type (or the one whose end markers the vocabulary has)."""
    vocab = tokenizer.get_vocab() if tokenizer is not None else {}
    if model_type in MODEL_TYPE_TEMPLATES:
        chosen = TEMPLATES[MODEL_TYPE_TEMPLATES[model_type]]
        if tokenizer is None or all(w in vocab for w in chosen.stop_words):
            return chosen
    for name in ("gemma", "chatml", "llama3"):
        if tokenizer is not None and all(w in vocab for w in TEMPLATES[name].stop_words):
            return TEMPLATES[name]
    return TEMPLATES["default"]


def get_template(name: str, model_type: str | None = None, tokenizer: Any = None) -> Any:
    """Resolve a template name.

    'auto' uses the tokenizer's own ``chat_template`` when it has one: a built-in that renders it
    token for token is used as is, otherwise the model's Jinja template itself (``JinjaTemplate``).
    Without one, the built-in for the model type (or the tokenizer's special tokens) is chosen.
    """
    if name in ("auto", "model"):  # 'model': what a run on the model's own template records
        source = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
        if isinstance(source, str) and source.strip():
            from tunesmith.data.jinja import from_model_template

            return from_model_template(source, tokenizer, _by_model(model_type, tokenizer))
        return _by_model(model_type, tokenizer)
    key = _ALIASES.get(name, name)
    if key not in TEMPLATES:
        import difflib

        close = difflib.get_close_matches(name, list(TEMPLATES) + list(_ALIASES), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError([f"'template': unknown template {name!r}{hint} (choose from auto, "
                           f"{', '.join(TEMPLATES)})"])
    return TEMPLATES[key]


def to_jinja(t: Any) -> str:
    """An HF ``chat_template`` (Jinja) that renders exactly what the template renders."""
    from tunesmith.data.jinja import template_to_jinja

    return template_to_jinja(t)
