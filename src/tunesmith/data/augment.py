"""Corpus expansion from the notes (扩充语料), for ideas that need no model, plus model paraphrases.

- ``reverse_examples``: swap question and answer into a reverse task (Q&A交换).
- ``judgement_examples``: turn an answer into true/false judgement items (根据内容，判断正确错误).
- ``with_system``: add a role / system prompt (调整角色设定).
- ``paraphrase_instructions``: rewrite the instruction line from paraphrase templates, so one fixed
  phrasing does not teach the model the phrase instead of the task (数据集的指令需要多样化).
- ``model_paraphrases``: ask any model for paraphrases of each distinct instruction, through a
  caller-supplied ``ask`` function, with a JSON cache keyed by (model, prompt) so a re-run costs nothing.

Every generated example is a new SFTExample; originals are never changed in place.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from tunesmith.data.dedupe import normalize
from tunesmith.data.records import Example, Message, SFTExample
from tunesmith.utils.errors import DataFormatError
from tunesmith.utils.io import write_json

PLACEHOLDER = "{instruction}"
# Meaning-preserving wrappers: they change the wording around an instruction, never what it asks for.
DEFAULT_TEMPLATES = (
    "{instruction}",
    "请完成下面的任务。\n{instruction}",
    "任务：{instruction}",
    "{instruction}\n请按要求作答。",
    "Please complete the following task.\n{instruction}",
    "Task: {instruction}",
    "{instruction}\nFollow the instruction above.",
)


def has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def single_turn(examples: list[Example]) -> tuple[list[SFTExample], int]:
    """The single-turn SFT examples, and how many others were skipped."""
    keep = [e for e in examples if isinstance(e, SFTExample) and len(e.messages) == 2]
    return keep, len(examples) - len(keep)


@dataclass
class Augmented:
    """New examples and a line per skipped group, for the report."""

    examples: list[SFTExample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


REVERSE_ZH = "下面给出一个回答，请写出它所回答的问题或指令。\n回答：{answer}"
REVERSE_EN = "Here is an answer. Write the question or instruction it answers.\nAnswer: {answer}"


def reverse_examples(examples: list[Example], *, min_answer_chars: int = 10) -> Augmented:
    """Answer -> question items. Label-like answers (shorter than ``min_answer_chars``) are skipped:
    "化学" is the answer to hundreds of questions, so the reverse task would be unlearnable."""
    pool, other = single_turn(examples)
    out = Augmented()
    short = 0
    for ex in pool:
        answer = ex.response.strip()
        if len(answer) < min_answer_chars:
            short += 1
            continue
        tmpl = REVERSE_ZH if has_cjk(answer + ex.messages[0].content) else REVERSE_EN
        msgs = [Message("user", tmpl.replace("{answer}", answer)), Message("assistant", ex.messages[0].content)]
        out.examples.append(SFTExample(msgs, ex.system, ex.origin))
    if short:
        out.notes.append(f"reverse: {short} examples with answers shorter than {min_answer_chars} characters "
                         "skipped (a label-like answer cannot be turned back into its question)")
    if other:
        out.notes.append(f"reverse: {other} multi-turn or non-SFT examples skipped")
    return out


JUDGE_ZH = ("判断下面的回答是否正确，只回答“正确”或“错误”。\n问题：{question}\n回答：{answer}", "正确", "错误")
JUDGE_EN = ("Is the answer below correct? Reply with only “correct” or “incorrect”.\nQuestion: {question}\n"
            "Answer: {answer}", "correct", "incorrect")


def judgement_examples(examples: list[Example], *, seed: int = 42, negatives: int = 1) -> Augmented:
    """For each example: one item judging its own answer correct, and ``negatives`` items judging an
    answer taken from another example (with a different answer) incorrect."""
    pool, other = single_turn(examples)
    rng = random.Random(seed)
    out = Augmented()
    answers = [e.response.strip() for e in pool]
    distinct = len({normalize(a) for a in answers})
    for i, ex in enumerate(pool):
        question, answer = ex.messages[0].content, answers[i]
        prompt, yes, no = JUDGE_ZH if has_cjk(question + answer) else JUDGE_EN
        out.examples.append(_judged(ex, prompt, question, answer, yes))
        if distinct < 2:
            continue
        for _ in range(negatives):
            wrong = answers[rng.randrange(len(answers))]
            while normalize(wrong) == normalize(answer):
                wrong = answers[rng.randrange(len(answers))]
            out.examples.append(_judged(ex, prompt, question, wrong, no))
    if pool and distinct < 2:
        out.notes.append("judge: every answer is the same, so no 'incorrect' items could be made")
    if other:
        out.notes.append(f"judge: {other} multi-turn or non-SFT examples skipped")
    return out


def _judged(ex: SFTExample, prompt: str, question: str, answer: str, verdict: str) -> SFTExample:
    text = prompt.replace("{question}", question).replace("{answer}", answer)
    return SFTExample([Message("user", text), Message("assistant", verdict)], ex.system, ex.origin)


def with_system(examples: list[Example], system: str, *, mode: str = "add") -> Augmented:
    """``add``: a copy of each SFT example with this system prompt (originals stay);
    ``set``: every SFT example rewritten with it (the originals are replaced in the output)."""
    if not system.strip():
        raise DataFormatError("--system is empty",
                              hint="give the role text, e.g. --system '你是一位资深的电力系统分析师'")
    out = Augmented()
    for ex in examples:
        if isinstance(ex, SFTExample) and (mode == "set" or ex.system != system):
            out.examples.append(replace(ex, messages=list(ex.messages), system=system))
    return out


def load_templates(path: str | Path) -> list[str]:
    """Paraphrase templates, one per line (blank lines and lines starting with # ignored); a literal
    newline inside a template is written as \\n."""
    p = Path(path)
    if not p.is_file():
        raise DataFormatError(f"{p}: template file not found",
                              hint="one template per line; {instruction} marks where the original goes")
    out = [line.replace("\\n", "\n") for line in p.read_text(encoding="utf-8").splitlines()
           if line.strip() and not line.lstrip().startswith("#")]
    if not out:
        raise DataFormatError(f"{p}: no templates in the file")
    return out


def _with_instruction(ex: SFTExample, instruction: str) -> SFTExample:
    """The example with the first line of its user turn replaced."""
    _, sep, rest = ex.messages[-2].content.partition("\n")
    msgs = list(ex.messages)
    msgs[-2] = Message("user", instruction + (sep + rest if sep else ""))
    return SFTExample(msgs, ex.system, ex.origin)


def instruction_of(ex: SFTExample) -> str:
    """The instruction line: the first line of the last user turn (Alpaca's ``instruction``)."""
    return ex.messages[-2].content.partition("\n")[0]


def paraphrase_instructions(examples: list[Example], variants: Callable[[str], list[str]], *, seed: int = 42,
                            copies: int = 1, replace_original: bool = False) -> Augmented:
    """Rewrite each example's instruction line with alternatives from ``variants(instruction)``.

    ``replace_original``: every example gets one variant, spread evenly, and the output replaces the
    input (same size, more varied). Otherwise up to ``copies`` new examples per example, each with a
    variant different from the original wording.
    """
    rng = random.Random(seed)
    out = Augmented()
    pool = [e for e in examples if isinstance(e, SFTExample) and e.messages[-2].role == "user"]
    order = list(range(len(pool)))
    rng.shuffle(order)
    for n, i in enumerate(order):
        ex = pool[i]
        original = instruction_of(ex)
        options = [v for v in dict.fromkeys(variants(original)) if v.strip()]
        if replace_original:
            choice = options[n % len(options)] if options else original
            out.examples.append(_with_instruction(ex, choice))
            continue
        fresh = [v for v in options if normalize(v) != normalize(original)]
        for v in rng.sample(fresh, min(copies, len(fresh))):
            out.examples.append(_with_instruction(ex, v))
    if replace_original:
        order_back = sorted(range(len(order)), key=lambda k: order[k])
        out.examples = [out.examples[k] for k in order_back]
    return out


def template_variants(templates: list[str]) -> Callable[[str], list[str]]:
    """A ``variants`` function from templates: {instruction} is replaced by the original; a template
    without it replaces the instruction entirely (for data with one fixed instruction)."""
    return lambda instruction: [t.replace(PLACEHOLDER, instruction) for t in templates]


# --- paraphrases from a model -------------------------------------------------------------------

PARAPHRASE_ZH = ("请用{n}种不同的说法改写下面这条指令，意思和要求必须完全不变。每行写一种，不要编号，不要其他内容。\n"
                 "指令：{instruction}")
PARAPHRASE_EN = ("Rewrite the instruction below in {n} different ways. Keep its meaning and every requirement "
                 "exactly. Write one per line, no numbering, nothing else.\nInstruction: {instruction}")
_NUMBERING = re.compile(r"^\s*(?:[-*•]|\d+[.)、:：]|[（(]\d+[)）])\s*")


def paraphrase_prompt(instruction: str, n: int) -> str:
    tmpl = PARAPHRASE_ZH if has_cjk(instruction) else PARAPHRASE_EN
    return tmpl.replace("{n}", str(n)).replace("{instruction}", instruction)


def parse_paraphrases(reply: str, original: str, n: int) -> list[str]:
    """Lines of a model's reply, without numbering, quotes, repeats or the original itself."""
    seen = {normalize(original)}
    out: list[str] = []
    for line in reply.splitlines():
        text = _NUMBERING.sub("", line).strip().strip("\"'“”「」")
        key = normalize(text)
        if not key or key in seen or text.endswith((":", "：")):
            continue
        seen.add(key)
        out.append(text)
    return out[:n]


class ParaphraseCache:
    """Answers keyed by sha256(model, prompt), stored as JSON; ``save`` writes atomically."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.data: dict[str, dict[str, str]] = {}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{self.path}: the paraphrase cache is not valid JSON ({exc.msg})",
                                      hint="delete the file; it will be rebuilt") from exc

    @staticmethod
    def key(model: str, prompt: str) -> str:
        return hashlib.sha256(f"{model}\x00{prompt}".encode()).hexdigest()

    def get(self, model: str, prompt: str) -> str | None:
        hit = self.data.get(self.key(model, prompt))
        return hit["reply"] if hit else None

    def put(self, model: str, prompt: str, reply: str) -> None:
        self.data[self.key(model, prompt)] = {"model": model, "prompt": prompt, "reply": reply}

    def save(self) -> None:
        write_json(self.path, self.data)


@dataclass
class ModelParaphrases:
    """Paraphrases per distinct instruction, and how many prompts the model was actually asked."""

    by_instruction: dict[str, list[str]]
    asked: int
    cached: int


def model_paraphrases(instructions: list[str], ask: Callable[[list[str]], list[str]], model: str,
                      cache: ParaphraseCache, *, n: int = 3) -> ModelParaphrases:
    """Ask ``model`` (through ``ask``: prompts -> replies) for ``n`` paraphrases of each distinct
    instruction; cached replies are reused and new ones are added to the cache."""
    distinct = list(dict.fromkeys(instructions))
    prompts = {ins: paraphrase_prompt(ins, n) for ins in distinct}
    missing = [ins for ins in distinct if cache.get(model, prompts[ins]) is None]
    if missing:
        replies = ask([prompts[ins] for ins in missing])
        for ins, reply in zip(missing, replies):
            cache.put(model, prompts[ins], reply)
        cache.save()
    found = {ins: parse_paraphrases(cache.get(model, prompts[ins]) or "", ins, n) for ins in distinct}
    return ModelParaphrases(found, asked=len(missing), cached=len(distinct) - len(missing))
