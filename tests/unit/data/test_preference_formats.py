"""Preference and KTO data: every accepted shape, the registry mapping, the errors, and TRL's record shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.data.formats import convert_records
from tunesmith.data.preference import encode_pair, kto_record, preference_record, prompt_record
from tunesmith.data.records import KTOExample, Origin, PreferenceExample, RawRecord, SFTExample, to_dict
from tunesmith.data.registry import load_examples
from tunesmith.data.templates import TEMPLATES
from tunesmith.utils.errors import DataFormatError

NOTES_SHAPE = {"question": "地球为什么会自转？", "positive_answer": "角动量守恒。", "negative_answer": "因为公转。"}
SHAPES = {
    "notes": NOTES_SHAPE,
    "prompt_chosen_rejected": {"prompt": "地球为什么会自转？", "chosen": "角动量守恒。", "rejected": "因为公转。"},
    "alpaca_pairs": {"instruction": "地球为什么会自转？", "input": "",
                     "chosen": "角动量守恒。", "rejected": "因为公转。"},
    "sharegpt": {"conversations": [{"from": "human", "value": "地球为什么会自转？"}],
                 "chosen": {"from": "gpt", "value": "角动量守恒。"},
                 "rejected": {"from": "gpt", "value": "因为公转。"}},
    "openai": {"messages": [{"role": "user", "content": "地球为什么会自转？"}],
               "chosen": [{"role": "assistant", "content": "角动量守恒。"}],
               "rejected": [{"role": "assistant", "content": "因为公转。"}]},
}


def _convert(*records: dict, **kw: object) -> list:
    return convert_records([RawRecord(r, Origin("pairs.json", i + 1)) for i, r in enumerate(records)], **kw)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_preference_shape_gives_the_same_pair(shape: str) -> None:
    (ex,) = _convert(SHAPES[shape])
    assert isinstance(ex, PreferenceExample)
    assert [m.content for m in ex.messages] == ["地球为什么会自转？"]
    assert (ex.chosen, ex.rejected) == ("角动量守恒。", "因为公转。")


def test_identical_answers_are_refused_with_the_line() -> None:
    bad = {**NOTES_SHAPE, "negative_answer": " 角动量守恒。 "}
    with pytest.raises(DataFormatError, match=r"pairs.json:2: the chosen and rejected answers are identical"):
        _convert(NOTES_SHAPE, bad)


@pytest.mark.parametrize("missing", ["positive_answer", "negative_answer"])
def test_notes_shape_missing_answer_names_the_field(missing: str) -> None:
    rec = {k: v for k, v in NOTES_SHAPE.items() if k != missing}
    with pytest.raises(DataFormatError, match=f"pairs.json:2: missing field '{missing}'"):
        _convert(NOTES_SHAPE, rec)


def test_kto_records_and_their_errors() -> None:
    good, bad = _convert({"instruction": "如何学英语？", "output": "每天坚持阅读英文文章。", "kto_tag": True},
                         {"instruction": "如何学英语？", "output": "不用学。", "kto_tag": "false"})
    assert isinstance(good, KTOExample) and good.label is True and good.completion == "每天坚持阅读英文文章。"
    assert bad.label is False
    with pytest.raises(DataFormatError, match=r"pairs.json:2: missing field 'kto_tag'"):
        _convert({"instruction": "q", "output": "a", "kto_tag": True}, {"instruction": "q", "output": "b"})
    for tag in ("maybe", 1, None, [True]):
        with pytest.raises(DataFormatError, match="'kto_tag' must be true or false"):
            _convert({"instruction": "q", "output": "a", "kto_tag": tag})


def test_kto_sharegpt_through_the_registry(tmp_path: Path) -> None:
    rows = [{"messages": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}], "label": True},
            {"messages": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "go away"}], "label": False}]
    (tmp_path / "kto.json").write_text(json.dumps(rows))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"fb": {
        "file_name": "kto.json", "formatting": "sharegpt", "columns": {"messages": "messages", "kto_tag": "label"}}}))
    a, b = load_examples("fb", tmp_path)
    assert isinstance(a, KTOExample) and (a.completion, a.label) == ("hello", True)
    assert [m.role for m in a.messages] == ["user"] and (b.completion, b.label) == ("go away", False)


def test_registry_ranking_entry_maps_renamed_columns(tmp_path: Path) -> None:
    rows = [{"q": "2+2?", "good": "4", "bad": "5"}]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"pairs": {
        "file_name": "p.jsonl", "ranking": True, "formatting": "alpaca",
        "columns": {"prompt": "q", "chosen": "good", "rejected": "bad"}}}))
    (ex,) = load_examples("pairs", tmp_path)
    assert isinstance(ex, PreferenceExample) and (ex.messages[0].content, ex.chosen, ex.rejected) == ("2+2?", "4", "5")


def test_canonical_dicts_round_trip() -> None:
    """Multi-stage replay writes examples with to_dict; reading them back must give the same examples."""
    pref, kto = _convert({**SHAPES["prompt_chosen_rejected"], "system": "Be brief."})[0], _convert(
        {"instruction": "q", "output": "a", "kto_tag": False, "system": "S"})[0]
    for ex in (pref, kto):
        (back,) = _convert(to_dict(ex))
        assert type(back) is type(ex)
        assert (back.messages, back.system) == (ex.messages, ex.system)
    assert _convert(to_dict(kto))[0].label is False


def test_trl_records_are_conversational() -> None:
    (pref,) = _convert({**SHAPES["prompt_chosen_rejected"], "system": "Be brief."})
    rec = preference_record(pref)
    assert rec["prompt"] == [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "地球为什么会自转？"}]
    assert rec["chosen"] == [{"role": "assistant", "content": "角动量守恒。"}]
    (kto,) = _convert({"instruction": "q", "output": "a", "kto_tag": True})
    assert kto_record(kto) == {"prompt": [{"role": "user", "content": "q"}],
                               "completion": [{"role": "assistant", "content": "a"}], "label": True}
    (sft,) = _convert({"instruction": "2+2?", "output": "4"})
    assert isinstance(sft, SFTExample)
    assert prompt_record(sft) == {"prompt": [{"role": "user", "content": "2+2?"}], "answer": "4"}


def test_reward_model_pair_encoding_matches_the_template(tiny_tokenizer) -> None:  # noqa: ANN001
    (pref,) = _convert(SHAPES["prompt_chosen_rejected"])
    row, truncated = encode_pair(pref, TEMPLATES["gemma"], tiny_tokenizer, 512)
    assert not truncated
    text = tiny_tokenizer.decode(row["chosen_ids"])
    assert text.startswith("<bos><start_of_turn>user\n") and text.endswith("角动量守恒。<end_of_turn>\n")
    assert tiny_tokenizer.decode(row["rejected_ids"]).endswith("因为公转。<end_of_turn>\n")
    full_len = len(row["chosen_ids"])
    short, truncated = encode_pair(pref, TEMPLATES["gemma"], tiny_tokenizer, full_len - 6)
    assert truncated and len(short["chosen_ids"]) <= full_len - 6
    assert tiny_tokenizer.decode(short["chosen_ids"]).endswith("<end_of_turn>\n"), "the answer survives truncation"
