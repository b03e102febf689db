"""Built-in templates against each family's official Jinja chat template, token for token.

The official templates are stored in tests/data/chat_templates (sources in the README's model
table). Each is rendered the way transformers renders a model's ``chat_template`` and tokenized in
one piece; tunesmith's ids (segment by segment) must be the same, prompts must be exactly the
official generation prompts, and the loss must fall on the replies and their end markers only.
The same official templates, used as a model's own template (``template: auto``), must either
resolve to the matching built-in or be aligned by rendering so the same tokens carry the loss.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.data.jinja import KNOWN_END_MARKERS, JinjaTemplate, from_model_template, template_to_jinja
from tunesmith.data.records import Message, SFTExample
from tunesmith.data.templates import TEMPLATES, get_template
from tunesmith.data.tokenize import IGNORE_INDEX, encode_prompt, encode_segments, encode_sft
from tunesmith.utils.errors import DataFormatError

DATA = Path(__file__).resolve().parents[2] / "data" / "chat_templates"

FAMILY_SPECIAL = [
    "<pad>", "<unk>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<|im_start|>", "<|im_end|>",
    "<|im_sep|>", "<|endoftext|>", "<think>", "</think>", "<|begin_of_text|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<s>", "</s>", "[INST]", "[/INST]", "<|system|>", "<|user|>",
    "<|assistant|>", "<|end|>", "[gMASK]", "<sop>", "<|observation|>", "<｜begin▁of▁sentence｜>",
    "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
]

# built-in name -> (official template file, bos_token, eos_token)
FAMILIES = {
    "qwen": ("qwen2.5.jinja", None, "<|im_end|>"),
    "qwen2": ("qwen2.jinja", None, "<|im_end|>"),
    "qwen3": ("qwen3.jinja", None, "<|im_end|>"),
    "deepseek-r1": ("deepseek-r1-distill-qwen.jinja", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "llama3": ("llama3.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    "llama3.1": ("llama3.1.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    "mistral": ("mistral-v0.3.jinja", "<s>", "</s>"),
    "phi3": ("phi3.jinja", "<s>", "<|endoftext|>"),
    "phi4-mini": ("phi4-mini.jinja", None, "<|endoftext|>"),
    "phi4": ("phi4.jinja", None, "<|im_end|>"),
    "glm4": ("glm4-0414.jinja", None, "<|endoftext|>"),
    "gemma": ("gemma3.jinja", "<bos>", "<eos>"),
}
NO_SYSTEM = {"gemma2.jinja"}

SINGLE = ([Message("user", "What is 2+3?"), Message("assistant", "5")], None)
WITH_SYSTEM = ([Message("user", "What is 2+3?"), Message("assistant", "5")], "Answer briefly.")
MULTI = ([Message("user", "What is 2+3?"), Message("assistant", "5"), Message("user", "And 2+4?"),
          Message("assistant", "It is 6.")], None)
MULTI_SYSTEM = (MULTI[0], "You are a careful math tutor.")
CONVERSATIONS = {"single": SINGLE, "system": WITH_SYSTEM, "multi": MULTI, "multi+system": MULTI_SYSTEM}


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - a transformers tokenizer
    """A byte-level BPE tokenizer that has every family's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = ["What is 2+3? And 2+4? It is 6. Answer briefly. You are a careful math tutor.",
              "Let me add the numbers. First 2, then 3. You are Qwen, created by Alibaba Cloud.",
              "Cutting Knowledge Date: December 2023 Today Date: 26 Jul 2024 user model assistant system"]
    t = Tokenizer(models.BPE(unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    t.train_from_iterator(corpus * 20, trainers.BpeTrainer(vocab_size=500, special_tokens=FAMILY_SPECIAL,
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=t, pad_token="<pad>", unk_token="<unk>")
    path = tmp_path_factory.mktemp("family-tok")
    fast.save_pretrained(path)
    return PreTrainedTokenizerFast.from_pretrained(path)


def official(name: str, msgs: list[Message], system: str | None, *, gen: bool, **kw: object) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    file, bos, eos = FAMILIES[name]
    chat = ([{"role": "system", "content": system}] if system else []) + [
        {"role": m.role, "content": m.content, **({"reasoning_content": m.reasoning} if m.reasoning else {})}
        for m in msgs]
    texts, _ = render_jinja_template([chat], chat_template=(DATA / file).read_text(), add_generation_prompt=gen,
                                     bos_token=bos, eos_token=eos, **kw)
    return texts[0]


def ours(name: str, tok, msgs: list[Message], system: str | None, *, gen: bool = False,  # noqa: ANN001
         enable_thinking: bool = True) -> tuple[list[int], list[int]]:
    _, bos, eos = FAMILIES[name]
    segs = TEMPLATES[name].segments(msgs, system, bos, eos, add_generation_prompt=gen,
                                    enable_thinking=enable_thinking)
    return encode_segments(tok, segs)


def ids(tok, text: str) -> list[int]:  # noqa: ANN001
    return tok.encode(text, add_special_tokens=False)


def trained(tok, input_ids: list[int], labels: list[int]) -> str:  # noqa: ANN001
    return tok.decode([i for i, lab in zip(input_ids, labels, strict=True) if lab != IGNORE_INDEX])


def end_of(name: str) -> str:
    t = TEMPLATES[name]
    return t.assistant.split("{content}")[-1].replace("{eos}", FAMILIES[name][2]) + t.next_turn_marker


@pytest.mark.parametrize("conv", list(CONVERSATIONS))
@pytest.mark.parametrize("name", list(FAMILIES))
def test_generation_prompt_is_the_official_one_token_for_token(tok, name: str, conv: str) -> None:  # noqa: ANN001
    msgs, system = CONVERSATIONS[conv]
    prompt = msgs[:-1]
    gen = name != "mistral"  # Mistral's template has no generation prompt: it ends with [/INST]
    want = ids(tok, official(name, prompt, system, gen=gen))
    got, _ = ours(name, tok, prompt, system, gen=True)
    assert got == want, (tok.decode(got), tok.decode(want))


# Where training deliberately differs from the official rendering of a finished conversation:
#   glm4: the reply's end-of-turn is the next <|user|> marker, so the last reply ends with it too;
#   deepseek-r1: the last reply is trained after the official generation prompt's "<think>\n", with an
#   (empty) reasoning block; the official template would drop reasoning from a finished conversation.
def expected_full(name: str, msgs: list[Message], system: str | None) -> str:
    if name == "glm4":
        return official(name, msgs, system, gen=False) + "<|user|>"
    if name == "deepseek-r1":
        return official(name, msgs[:-1], system, gen=True) + "\n</think>\n\n" + msgs[-1].content \
            + "<｜end▁of▁sentence｜>"
    return official(name, msgs, system, gen=False)


@pytest.mark.parametrize("conv", list(CONVERSATIONS))
@pytest.mark.parametrize("name", list(FAMILIES))
def test_training_sequence_matches_the_official_rendering(tok, name: str, conv: str) -> None:  # noqa: ANN001
    msgs, system = CONVERSATIONS[conv]
    got, labels = ours(name, tok, msgs, system)
    want = ids(tok, expected_full(name, msgs, system))
    assert got == want, (tok.decode(got), tok.decode(want))
    # training starts with exactly the official prompt for its last reply
    prompt = ids(tok, official(name, msgs[:-1], system, gen=name != "mistral"))
    assert got[: len(prompt)] == prompt
    # loss on each reply and its end-of-turn marker, nothing else
    replies = [m.content for m in msgs if m.role == "assistant"]
    lead = {"mistral": " ", "glm4": "\n"}.get(name, "")
    think = {"qwen3": "<think>\n\n</think>\n\n", "deepseek-r1": "\n</think>\n\n"}.get(name, "")
    want_trained = "".join(lead + r + end_of(name) for r in replies[:-1]) + lead + think + replies[-1] + end_of(name)
    assert trained(tok, got, labels) == want_trained


REASONING = [Message("user", "What is 2+3?"), Message("assistant", "5", reasoning="2 plus 3 makes 5."),
             Message("user", "And 2+4?"), Message("assistant", "It is 6.", reasoning="2 plus 4 is 6.")]
INLINE = [Message("user", "What is 2+3?"), Message("assistant", "<think>\nadd them\n</think>\n\n5")]


def test_qwen3_reasoning_field_and_inline_think_match_official(tok) -> None:  # noqa: ANN001
    for msgs in (REASONING, INLINE):
        got, labels = ours("qwen3", tok, msgs, None)
        assert got == ids(tok, official("qwen3", msgs, None, gen=False))
        # earlier turns lose their reasoning (as in the official template); the last keeps it, trained
        last = msgs[-1].reasoning or "add them"
        answer = msgs[-1].content.split("</think>\n\n")[-1]
        assert trained(tok, got, labels).endswith(f"<think>\n{last}\n</think>\n\n{answer}<|im_end|>")
        assert "2 plus 3" not in tok.decode(got)


def test_qwen3_enable_thinking_false(tok) -> None:  # noqa: ANN001
    prompt = SINGLE[0][:1]
    got, _ = ours("qwen3", tok, prompt, None, gen=True, enable_thinking=False)
    assert got == ids(tok, official("qwen3", prompt, None, gen=True, enable_thinking=False))
    # a reply without reasoning: the empty block is part of the prompt, not trained
    got, labels = ours("qwen3", tok, SINGLE[0], None, enable_thinking=False)
    assert tok.decode(got) == official("qwen3", SINGLE[0], None, gen=False)
    assert trained(tok, got, labels) == "5<|im_end|>"
    # thinking on (the default): the model learns to close an empty block itself
    got, labels = ours("qwen3", tok, SINGLE[0], None)
    assert trained(tok, got, labels) == "<think>\n\n</think>\n\n5<|im_end|>"


def test_deepseek_r1_reasoning_is_trained_after_the_official_prompt(tok) -> None:  # noqa: ANN001
    got, labels = ours("deepseek-r1", tok, REASONING, None)
    prompt = ids(tok, official("deepseek-r1", REASONING[:-1], None, gen=True))
    assert got[: len(prompt)] == prompt  # history turns written as the official template writes them
    assert tok.decode(prompt).endswith("<｜Assistant｜><think>\n")
    assert trained(tok, got, labels) == ("5<｜end▁of▁sentence｜>"
                                         "2 plus 4 is 6.\n</think>\n\nIt is 6.<｜end▁of▁sentence｜>")


def test_templates_without_thinking_keep_reasoning_in_the_reply(tok) -> None:  # noqa: ANN001
    got, labels = ours("llama3", tok, REASONING[:2], None)
    assert trained(tok, got, labels) == "<think>\n2 plus 3 makes 5.\n</think>\n\n5<|eot_id|>"


def test_gemma_matches_gemma2_template_without_system(tok) -> None:  # noqa: ANN001
    from transformers.utils.chat_template_utils import render_jinja_template

    for msgs, _ in (SINGLE, MULTI):
        chat = [{"role": m.role, "content": m.content} for m in msgs]
        texts, _ = render_jinja_template([chat], chat_template=(DATA / "gemma2.jinja").read_text(),
                                         bos_token="<bos>", eos_token="<eos>")
        assert ours("gemma", tok, msgs, None)[0] == ids(tok, texts[0])


@pytest.mark.parametrize("conv", list(CONVERSATIONS))
@pytest.mark.parametrize("name", list(TEMPLATES))
def test_exported_jinja_renders_what_training_renders(name: str, conv: str) -> None:
    from transformers.utils.chat_template_utils import render_jinja_template

    msgs, system = CONVERSATIONS[conv]
    for variant in (msgs, REASONING, INLINE):
        off = {"enable_thinking": False}
        for gen, kw in ((False, {}), (True, {}), (True, off), (False, off)):
            m = variant[:-1] if gen else variant
            chat = ([{"role": "system", "content": system}] if system else []) + [
                {"role": x.role, "content": x.content, **({"reasoning_content": x.reasoning} if x.reasoning else {})}
                for x in m]
            texts, _ = render_jinja_template([chat], chat_template=template_to_jinja(TEMPLATES[name]),
                                             add_generation_prompt=gen, bos_token="<B>", eos_token="<E>", **kw)
            assert texts[0] == TEMPLATES[name].render(m, system, bos="<B>", eos="<E>", add_generation_prompt=gen,
                                                      enable_thinking=kw.get("enable_thinking", True))


class _Tok:
    """The family tokenizer posing as one model's tokenizer (its chat template and special tokens)."""

    def __init__(self, tok, source: str, bos: str | None, eos: str) -> None:  # noqa: ANN001
        self._tok, self.chat_template = tok, source
        self.special_tokens_map = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v}
        self.bos_token, self.eos_token = bos, eos

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._tok, name)

    def __call__(self, *a, **kw):  # noqa: ANN002, ANN003, ANN204
        return self._tok(*a, **kw)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_auto_picks_the_builtin_that_reproduces_the_models_template(tok, name: str) -> None:  # noqa: ANN001
    file, bos, eos = FAMILIES[name]
    assert get_template("auto", None, _Tok(tok, (DATA / file).read_text(), bos, eos)).name == name


def _own(tok, name: str) -> tuple[JinjaTemplate, _Tok]:  # noqa: ANN001
    file, bos, eos = FAMILIES[name]
    model_tok = _Tok(tok, (DATA / file).read_text(), bos, eos)
    jt = from_model_template(model_tok.chat_template, model_tok, TEMPLATES["default"])
    assert jt.name == name  # resolved to the built-in; below the model's own template is used instead
    stops = tuple(w for w in KNOWN_END_MARKERS if w in tok.get_vocab() and w in model_tok.chat_template)
    return JinjaTemplate(model_tok.chat_template, model_tok.special_tokens_map,
                         ((eos,) if eos not in stops else ()) + stops), model_tok


@pytest.mark.parametrize("name", list(FAMILIES))
def test_models_own_template_is_aligned_by_rendering(tok, name: str) -> None:  # noqa: ANN001
    """Without a built-in, the model's Jinja template is used: replies and end markers trained only."""
    jt, model_tok = _own(tok, name)
    msgs, system = MULTI if name == "mistral" else MULTI_SYSTEM
    enc, _ = encode_sft(SFTExample(msgs, system), jt, model_tok, cutoff_len=4096)
    full = official(name, msgs, system, gen=False)
    extra = FAMILIES[name][2] if name == "glm4" else ""  # no end marker after the last reply: EOS added
    assert enc.input_ids == ids(tok, full + extra)  # exactly the model's own rendering, tokenized whole
    text = trained(tok, enc.input_ids, enc.labels)
    body = {"deepseek-r1": "", "qwen3": "<think>\n\n</think>\n\n"}.get(name, "")
    lead = {"mistral": " ", "glm4": "\n"}.get(name, "")
    end = {"glm4": "<|user|>", "mistral": "</s>"}.get(name, end_of(name))
    last_end = {"glm4": "<|endoftext|>"}.get(name, end)
    assert text == f"{lead}5{end}{lead}{body}It is 6.{last_end}", text
    gen = name != "mistral"
    assert encode_prompt(msgs[:-1], system, jt, model_tok) == ids(tok, official(name, msgs[:-1], system, gen=gen))


def test_a_template_that_moves_the_system_prompt_cannot_be_aligned(tok) -> None:  # noqa: ANN001
    """Mistral's template writes the system prompt into the last user turn: the earlier reply's prompt
    is not a prefix of the conversation, and tunesmith says so instead of training on the wrong span."""
    jt, model_tok = _own(tok, "mistral")
    with pytest.raises(DataFormatError, match="built-in"):
        encode_sft(SFTExample(*MULTI_SYSTEM), jt, model_tok, cutoff_len=4096)


def test_a_run_trained_without_thinking_exports_a_template_that_defaults_to_it(tok) -> None:  # noqa: ANN001
    """enable_thinking: false in training makes the exported template add the empty block by default."""
    import dataclasses

    from transformers.utils.chat_template_utils import render_jinja_template

    off = dataclasses.replace(TEMPLATES["qwen3"], enable_thinking=False)
    chat = [{"role": "user", "content": "Hi"}]
    texts, _ = render_jinja_template([chat], chat_template=template_to_jinja(off), add_generation_prompt=True)
    assert texts[0] == off.render([Message("user", "Hi")], add_generation_prompt=True)
    assert texts[0].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert encode_prompt([Message("user", "Hi")], None, off, tok) == ids(tok, texts[0])
