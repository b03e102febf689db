"""Parity checks that end every export: does each artifact still behave like base + adapter?

Each artifact is loaded the way a user would load it — plain ``transformers`` from the folder (or
``gguf_file=`` for a GGUF), its own tokenizer, chat template and generation config — and compared
with the reference (the base model with the adapter attached, in fp32, stopping at the training
template's end-of-turn ids) on a handful of held-out prompts:

- **template**: the artifact's ``chat_template`` must render the same token ids as the training
  template, for a single turn, a system prompt and a multi-turn conversation;
- **stop ids**: the artifact must stop at every end-of-turn id (an export that lists only ``<eos>`` for a
  Gemma model answers until ``max_new_tokens``): for a folder its
  ``generation_config.eos_token_id``, for a GGUF its EOS and ``eot_token_id`` (what llama.cpp uses);
- **greedy output**: the merged model must produce exactly the reference's tokens, and its logits
  must match within ``merge_tolerance`` (max absolute difference);
- **token agreement**: with the reference continuation fed in (teacher forcing), the share of
  positions where the artifact's top token equals the reference's; quantized files (int8, GGUF
  f16 / q8_0) must reach ``min_agreement`` (rounding may flip a near-tie, so exact greedy output is
  reported for them but not required).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.data.records import Message
from tunesmith.data.templates import Template
from tunesmith.data.tokenize import encode_prompt

DEFAULT_PROMPTS = [
    "Which school subject does this question belong to? What is 2 + 3?",
    "判断下面这道题属于哪个学科：水的化学式是什么？",
    "Write one sentence about the sea.",
    "用一句话介绍长江。",
]


def merge_tolerance(dtype: str, logit_scale: float) -> float:
    """Largest |logit difference| allowed between the merged model and base + adapter.

    fp32: 1e-2 (a correct merge is ~1e-5 off). bf16 / fp16: the merged weights ``W + BA`` are rounded
    to the saved precision (bf16 keeps ~3 significant digits), so up to 5% of the largest |logit|;
    greedy output must still be identical.
    """
    return 1e-2 if dtype in ("float32", "fp32") else 0.05 * logit_scale


@dataclass
class Reference:
    """What base + adapter does on the check prompts."""

    conversations: list[tuple[list[Message], str | None]]  # (messages, system) rendered by the template check
    prompts: list[list[int]]  # token ids of each generation prompt (training template)
    outputs: list[list[int]]  # greedy continuation, including the stop token when it stopped
    logits: list[Any]  # logits at the positions that predict each output token
    stop_ids: list[int]
    max_new_tokens: int

    @property
    def logit_scale(self) -> float:
        """The largest |logit| the reference produced (tolerances for half precision scale with it)."""
        return max((float(x.abs().max()) for x in self.logits), default=1.0)


@dataclass
class ArtifactReport:
    """The result of checking one artifact."""

    name: str
    path: str
    passed: bool = True
    template_ok: bool = True
    stop_ids_ok: bool = True
    greedy_exact: str = ""
    token_agreement: float = 0.0
    max_logit_diff: float = 0.0
    problems: list[str] = field(default_factory=list)

    def fail(self, problem: str) -> None:
        self.passed = False
        self.problems.append(problem)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_conversations(prompts: list[str]) -> list[tuple[list[Message], str | None]]:
    """Conversation shapes the template check renders: each prompt, plus a system prompt and two turns."""
    convs: list[tuple[list[Message], str | None]] = [([Message("user", p)], None) for p in prompts]
    first = prompts[0]
    convs.append(([Message("user", first)], "You are a concise assistant."))
    convs.append(([Message("user", first), Message("assistant", "OK."), Message("user", prompts[-1])], None))
    return convs


def _greedy(model: Any, prompt: list[int], eos: list[int], max_new_tokens: int) -> list[int]:
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor([prompt], device=device)
    with torch.inference_mode():  # plain transformers on purpose (not model/generate.py): as a user would run it
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=eos[0])
    new = out[0, len(prompt):].tolist()
    for i, t in enumerate(new):
        if t in eos:
            return new[:i + 1]
    return new


def _forced_logits(model: Any, prompt: list[int], output: list[int]) -> Any:
    """Logits (float32, CPU) at the positions that predict each token of ``output``."""
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor([prompt + output], device=device)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1]
    return logits.float().cpu()


def build_reference(model: Any, tokenizer: Any, template: Template, stop_ids: list[int], prompts: list[str],
                    *, max_new_tokens: int) -> Reference:
    """Run base + adapter on the check prompts (before any merge changes its weights)."""
    convs = check_conversations(prompts)
    ids = [encode_prompt([Message("user", p)], None, template, tokenizer) for p in prompts]
    outputs = [_greedy(model, p, stop_ids, max_new_tokens) for p in ids]
    logits = [_forced_logits(model, p, o) for p, o in zip(ids, outputs)]
    return Reference(convs, ids, outputs, logits, list(stop_ids), max_new_tokens)


def _first_difference(a: list[int], b: list[int]) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def _template_problem(tokenizer: Any, train_tokenizer: Any, template: Template,
                      conv: tuple[list[Message], str | None]) -> str | None:
    """Compare the artifact's chat template with the training template on one conversation."""
    messages, system = conv
    want = encode_prompt(messages, system, template, train_tokenizer)
    if not getattr(tokenizer, "chat_template", None):
        return "the artifact has no chat_template"
    chat = ([{"role": "system", "content": system}] if system else []) + \
        [{"role": m.role, "content": m.content} for m in messages]
    got = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=False)
    got = list(got["input_ids"] if isinstance(got, dict) else got)
    if got == want:
        return None
    i = _first_difference(got, want)
    return (f"chat template differs from the training template at token {i} "
            f"(exported: {tokenizer.decode(got[max(0, i - 3):i + 4])!r}, "
            f"training: {train_tokenizer.decode(want[max(0, i - 3):i + 4])!r})")


def check_artifact(name: str, path: str, model: Any, tokenizer: Any, eos: list[int], ref: Reference, *,
                   template: Template, train_tokenizer: Any, exact: bool, tolerance: float,
                   min_agreement: float) -> ArtifactReport:
    """Compare one loaded artifact with the reference; ``exact`` demands identical greedy output."""
    report = ArtifactReport(name, path)
    for conv in ref.conversations:
        problem = _template_problem(tokenizer, train_tokenizer, template, conv)
        if problem:
            report.template_ok = False
            report.fail(problem)
            break
    missing = [i for i in ref.stop_ids if i not in eos]
    if missing:
        report.stop_ids_ok = False
        report.fail(f"generation would not stop at end-of-turn id(s) {missing} "
                    f"({', '.join(repr(train_tokenizer.decode([i])) for i in missing)}); eos is {eos}")
    same = agree = total = 0
    worst = 0.0
    for k, (prompt, want, want_logits) in enumerate(zip(ref.prompts, ref.outputs, ref.logits)):
        got = _greedy(model, prompt, eos or ref.stop_ids, ref.max_new_tokens)
        if got == want:
            same += 1
        elif exact:
            i = _first_difference(got, want)
            report.fail(f"prompt {k + 1}: greedy output differs at token {i}: "
                        f"{tokenizer.decode(got[i:i + 8])!r} instead of {train_tokenizer.decode(want[i:i + 8])!r}")
        logits = _forced_logits(model, prompt, want)
        agree += int((logits.argmax(-1) == want_logits.argmax(-1)).sum())
        total += len(want)
        worst = max(worst, float((logits - want_logits).abs().max()))
    report.greedy_exact = f"{same}/{len(ref.prompts)}"
    report.token_agreement = round(agree / max(1, total), 4)
    report.max_logit_diff = round(worst, 6)
    if exact and worst > tolerance:
        report.fail(f"logits differ from base + adapter by up to {worst:.4g} (tolerance {tolerance:g})")
    if not exact and report.token_agreement < min_agreement:
        report.fail(f"token agreement {report.token_agreement:.1%} is below {min_agreement:.0%}")
    return report


def load_folder(path: Path) -> tuple[Any, Any, list[int]]:
    """A model folder exactly as a user loads it: model, tokenizer, and its generation_config's eos ids."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

    from tunesmith.model.vision import is_vision_model

    auto = AutoModelForImageTextToText if is_vision_model(str(path)) else AutoModelForCausalLM
    model = auto.from_pretrained(path)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    eos = model.generation_config.eos_token_id
    return model, tokenizer, ([eos] if isinstance(eos, int) else list(eos or []))


def load_gguf_file(path: Path) -> tuple[Any, Any, list[int]]:
    """A GGUF through transformers' GGUF loader, stopping where llama.cpp would (EOS and EOT), with the
    chat template stored in the file (llama.cpp renders it; transformers' loader leaves it unset)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.export.gguf import gguf_tokenizer_extras

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    template, special, stop_ids = gguf_tokenizer_extras(path)
    tokenizer.chat_template = tokenizer.chat_template or template
    missing = {k: tokenizer.convert_ids_to_tokens(i) for k, i in special.items() if getattr(tokenizer, k, None) is None}
    if missing:
        tokenizer.add_special_tokens(missing)
    return model, tokenizer, stop_ids
