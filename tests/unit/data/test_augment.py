"""Corpus expansion without a model (reverse, judge, system, paraphrase templates) and the paraphrase cache."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tunesmith.data.augment import (
    DEFAULT_TEMPLATES,
    ParaphraseCache,
    instruction_of,
    judgement_examples,
    load_templates,
    model_paraphrases,
    paraphrase_instructions,
    parse_paraphrases,
    reverse_examples,
    template_variants,
    with_system,
)
from tunesmith.data.records import Message, SFTExample
from tunesmith.utils.errors import DataFormatError


def _sft(q: str, a: str, system: str | None = None) -> SFTExample:
    return SFTExample([Message("user", q), Message("assistant", a)], system)


LONG = [_sft("What does the heart do?", "It pumps blood through the body."),
        _sft("长江流入哪个海？", "长江最终流入东海。"),
        _sft("Name the subject.\n2 + 3?", "math")]


def test_reverse_swaps_question_and_answer_and_skips_labels() -> None:
    out = reverse_examples(LONG, min_answer_chars=8)
    assert len(out.examples) == 2
    en, zh = out.examples
    assert "It pumps blood through the body." in en.messages[0].content and en.response == "What does the heart do?"
    assert zh.messages[0].content.startswith("下面给出一个回答") and zh.response == "长江流入哪个海？"
    assert any("1 examples with answers shorter" in n for n in out.notes)


def test_judgement_items_are_balanced_and_negatives_are_wrong() -> None:
    data = [_sft(f"Question {i}?", ans) for i, ans in enumerate(["math", "history", "biology", "math"])]
    out = judgement_examples(data, seed=0)
    verdicts = Counter(e.response for e in out.examples)
    assert verdicts == {"correct": 4, "incorrect": 4}
    for ex in out.examples:
        q = ex.messages[0].content
        own = next(d.response for d in data if d.messages[0].content in q)
        shown = q.rsplit("Answer: ", 1)[1]
        assert (shown == own) == (ex.response == "correct")


def test_judgement_makes_no_negatives_when_all_answers_agree() -> None:
    out = judgement_examples([_sft("a?", "same"), _sft("b?", "same")])
    assert [e.response for e in out.examples] == ["correct", "correct"]
    assert out.notes


def test_system_prompt_add_and_set() -> None:
    role = "你是一位资深的电力系统分析师。"
    added = with_system([LONG[0], _sft("x?", "y", system=role)], role)
    assert len(added.examples) == 1 and added.examples[0].system == role
    assert LONG[0].system is None, "originals are not changed"
    assert len(with_system([LONG[0], _sft("x?", "y", system=role)], role, mode="set").examples) == 2
    with pytest.raises(DataFormatError):
        with_system(LONG, "  ")


def test_paraphrase_templates_replace_spreads_one_fixed_instruction() -> None:
    fixed = [_sft(f"根据以下已知内容，请回答问题并说明原因。\n问题{i}", f"答{i}") for i in range(60)]
    templates = ["根据以下已知内容，请回答问题并说明原因。", "阅读材料后回答问题，并给出理由。",
                 "结合下面的内容作答，说明原因。"]
    out = paraphrase_instructions(fixed, template_variants(templates), replace_original=True)
    assert len(out.examples) == 60
    shares = Counter(instruction_of(e) for e in out.examples)
    assert max(shares.values()) == 20, "three phrasings, evenly spread"
    assert [e.messages[0].content.split("\n")[1] for e in out.examples] == [f"问题{i}" for i in range(60)]


def test_paraphrase_copies_use_new_wordings_only() -> None:
    out = paraphrase_instructions(LONG, template_variants(list(DEFAULT_TEMPLATES)), copies=2)
    assert len(out.examples) == 6
    originals = {o.messages[0].content for o in LONG}
    assert all(ex.messages[0].content not in originals for ex in out.examples)
    copies = [e for e in out.examples if e.response == "math"]
    assert len(copies) == 2 and all(e.messages[0].content.endswith("\n2 + 3?") for e in copies), "input kept"


def test_load_templates(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("# comment\n请回答：{instruction}\n\nTask:\\n{instruction}\n", encoding="utf-8")
    assert load_templates(path) == ["请回答：{instruction}", "Task:\n{instruction}"]
    with pytest.raises(DataFormatError):
        load_templates(tmp_path / "missing.txt")


def test_parse_paraphrases_strips_numbering_and_repeats() -> None:
    reply = ("1. 请判断题目所属学科。\n2) 这道题属于哪一科？\n- 请判断题目所属学科。\n以下是改写：\n"
             "判断下面这道题属于哪个学科。")
    assert parse_paraphrases(reply, "判断下面这道题属于哪个学科。", 5) == ["请判断题目所属学科。", "这道题属于哪一科？"]


def test_model_paraphrases_are_cached_so_a_rerun_asks_nothing(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def ask(prompts: list[str]) -> list[str]:
        calls.append(prompts)
        return [f"Variant A of {i}\nVariant B of {i}" for i in range(len(prompts))]

    cache_path = tmp_path / "cache.json"
    instructions = ["Classify the subject.", "Name the subject.", "Classify the subject."]
    first = model_paraphrases(instructions, ask, "m1", ParaphraseCache(cache_path), n=2)
    assert first.asked == 2 and len(calls) == 1 and len(calls[0]) == 2
    assert first.by_instruction["Name the subject."] == ["Variant A of 1", "Variant B of 1"]
    again = model_paraphrases(instructions, ask, "m1", ParaphraseCache(cache_path), n=2)
    assert again.asked == 0 and again.cached == 2 and len(calls) == 1
    assert again.by_instruction == first.by_instruction
    other_model = model_paraphrases(instructions[:1], ask, "m2", ParaphraseCache(cache_path), n=2)
    assert other_model.asked == 1, "the cache is keyed by model as well as prompt"
    assert len(json.loads(cache_path.read_text())) == 3


def test_broken_cache_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        ParaphraseCache(path)


def test_augment_command_keeps_originals_and_the_input_shape(tmp_path: Path, cli) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from tunesmith.cli.main import app

    rows = [{"instruction": "Explain briefly.", "input": f"Why is the sky blue? ({i})",
             "output": f"Because air scatters blue light more than red light ({i})."} for i in range(4)]
    src = tmp_path / "d.json"
    src.write_text(json.dumps(rows), encoding="utf-8")
    result = CliRunner().invoke(app, ["data", "augment", str(src), "--reverse", "--judge", "--system", "You teach.",
                                      "--paraphrase"])
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "d.augmented.json").read_text(encoding="utf-8"))
    assert out[:4] == rows, "originals first, unchanged"
    assert all(set(r) <= {"instruction", "input", "output", "system", "history"} for r in out), "alpaca shape kept"
    assert len(out) == 4 + 4 + 4 + 4 + 8  # system copies, paraphrases, reverse, judge (1 right + 1 wrong each)
    nothing = cli("data", "augment", str(src))
    assert nothing.code == 2 and "Traceback" not in nothing.err
    assert "nothing to do: choose --reverse, --judge, --system TEXT and/or --paraphrase" in nothing.err_text
