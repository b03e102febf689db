"""Each of the notes' rules: one case that triggers it and one that does not."""

from __future__ import annotations

from typing import Any

import pytest

from tunesmith.advise.profile import DataProfile, template_share
from tunesmith.advise.rules import Advice, advise, recommended_epochs, warmup_range
from tunesmith.config import load_config
from tunesmith.data.records import Message, SFTExample


def profile(n: int = 2000, *, n_val: int = 300, n_test: int = 300, length: int = 40, **kw: Any) -> DataProfile:
    """A data profile built by hand: n examples of ``length`` tokens."""
    base = dict(kind="sft", n_train=n, n_val=n_val, n_test=n_test, n_rows=n, lengths=[length] * n,
                tokens_per_epoch=n * length, label_tokens_per_epoch=n * 4, val_tokens=n_val * length,
                cutoff_len=kw.pop("cutoff_len", 1024), model_max_positions=32768, distinct_templates=20,
                top_template_share=0.05)
    base.update(kw)
    return DataProfile(**base)


GOOD = {  # a config that every rule accepts for profile() (2000 examples, 300 val)
    "dataset": "d", "finetuning_type": "lora", "learning_rate": 2e-4, "num_train_epochs": 5,
    "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1, "warmup_ratio": 0.1,
    "eval_steps": 20, "lora_rank": 8, "lora_alpha": 16, "cutoff_len": 1024, "weight_decay": 0.0,
}


def run(data: DataProfile | None = None, **overrides: Any) -> dict[str, Advice]:
    rows, _ = advise(load_config(None, {**GOOD, **overrides}), data or profile())
    return {r.key: r for r in rows}


def warned(rows: dict[str, Advice]) -> set[str]:
    return {k for k, r in rows.items() if r.level == "warn"}


def test_a_config_that_follows_the_notes_gets_no_warning() -> None:
    assert warned(run()) == set()


def test_fewer_than_1000_steps_recommends_a_smaller_batch() -> None:
    rows = run(per_device_train_batch_size=16, gradient_accumulation_steps=2)  # 5 x ceil(125 / 2) = 315 steps
    r = rows["optimizer steps"]
    assert r.level == "warn" and r.current.startswith("315 steps")
    assert r.recommended.startswith("1250 steps (batch 8 x accum 1)")
    bs, ga = r.change["per_device_train_batch_size"], r.change.get("gradient_accumulation_steps", 2)
    assert 2000 * 5 / (bs * ga) >= 1000
    assert run()["optimizer steps"].level == "ok"  # 2000*5/8 = 1250 steps


def test_unreachable_1000_steps_says_more_data_is_the_fix() -> None:
    r = run(profile(100, n_val=20), num_train_epochs=8)["optimizer steps"]
    assert r.level == "warn" and "more (diverse) data" in r.reason and r.change["per_device_train_batch_size"] == 1


@pytest.mark.parametrize("rank,alpha,warn", [(8, 16, False), (16, 16, False), (8, 32, False), (8, 4, True),
                                             (8, 64, True)])
def test_alpha_far_from_twice_the_rank(rank: int, alpha: int, warn: bool) -> None:
    r = run(lora_rank=rank, lora_alpha=alpha)["lora_alpha"]
    assert (r.level == "warn") == warn
    if warn:
        assert r.change == {"lora_alpha": 2 * rank}


def test_alpha_rule_only_for_lora() -> None:
    assert "lora_alpha" not in run(finetuning_type="freeze", learning_rate=2e-5)


@pytest.mark.parametrize("n,ratio,warn", [(500, 0.15, False), (500, 0.05, True), (5000, 0.08, False),
                                          (5000, 0.2, True), (50000, 0.03, False), (50000, 0.1, True)])
def test_warmup_range_depends_on_data_size(n: int, ratio: float, warn: bool) -> None:
    data = profile(n, n_val=max(1, n // 7))
    rows = run(data, warmup_ratio=ratio, num_train_epochs=recommended_epochs(n), per_device_train_batch_size=1)
    assert (rows["warmup_ratio"].level == "warn") == warn
    if warn:
        lo, hi = warmup_range(n)
        assert lo <= rows["warmup_ratio"].change["warmup_ratio"] <= hi


def test_eval_too_often_and_too_rarely() -> None:
    # 2000 rows / batch 8 = 250 steps per epoch: 10-20 evaluations per epoch is every 13-25 steps
    assert run(eval_steps=20)["eval_steps"].level == "ok"
    often = run(eval_steps=1)["eval_steps"]
    assert often.level == "warn" and "every step" in often.reason
    rare = run(eval_steps=250)["eval_steps"]
    assert rare.level == "warn" and "too rare" in rare.reason
    assert 13 <= rare.change["eval_steps"] <= 25


def test_eval_frequency_yields_to_evaluation_cost() -> None:
    # a validation set twice the training set: 10 evaluations per epoch would outlast training
    data = profile(n_val=4000, val_tokens=4000 * 40)
    r = run(data, eval_steps=20)["eval_steps"]
    assert r.level == "warn" and "longer than training" in r.reason
    assert r.change["eval_steps"] == 250  # (160000 / 2) / (1.0 * 8 * 40)


def test_examples_cut_by_cutoff_len_are_listed() -> None:
    lengths = [40] * 1997 + [900, 1500, 2100]
    data = profile(lengths=lengths, cutoff_len=1024,
                   over_cutoff=[("d.json:5", 1500), ("d.json:9", 2100)])
    r = run(data)["cutoff_len"]
    assert r.level == "warn" and "2 of 2000" in r.reason
    assert r.change == {"cutoff_len": 2112} and r.details == ["d.json:5 (1500 tokens)", "d.json:9 (2100 tokens)"]
    assert run(profile())["cutoff_len"].level == "ok"


def test_cutoff_beyond_the_models_length() -> None:
    r = [a for a in advise(load_config(None, {**GOOD, "cutoff_len": 65536}), profile(cutoff_len=65536))[0]
         if a.key == "cutoff_len"]
    assert any(a.level == "warn" and "pre-training length" in a.reason for a in r)


def test_one_instruction_phrasing_dominating_is_flagged() -> None:
    r = run(profile(top_template_share=0.8, top_template="根据以下已知内容"))["instruction phrasing"]
    assert r.level == "warn" and "augment --paraphrase" in r.reason
    assert run()["instruction phrasing"].level == "ok"


def test_template_share_sees_reused_templates_with_changing_slots() -> None:
    def ex(q: str) -> SFTExample:
        return SFTExample([Message("user", q), Message("assistant", "a")])

    same = [ex(f"根据以下已知内容，请回答问题并说明原因。已知内容：第{i}段材料。问题：问题{i}") for i in range(8)]
    varied = [ex(q) for q in ("Which subject is this?", "判断学科。", "Classify it.", "这是哪一科？")]
    share, top, _ = template_share(same + varied)
    assert share == pytest.approx(8 / 12) and top.startswith("根据以下已知内容")
    assert template_share(varied)[0] == pytest.approx(0.25)


def test_duplicates_are_flagged() -> None:
    r = run(profile(exact_duplicates=3, near_duplicates=2, duplicate_examples=["d:4 = d:1"]))["duplicates"]
    assert r.level == "warn" and r.current == "3 exact, 2 near" and r.details == ["d:4 = d:1"]
    assert run()["duplicates"].level == "ok"


def test_missing_splits_are_flagged_and_recommended() -> None:
    rows = run(profile(n_val=0, n_test=0, val_tokens=0))
    assert rows["val_size"].level == "warn" and rows["val_size"].change == {"val_size": 0.15}
    assert rows["test_size"].level == "warn" and rows["test_size"].change == {"test_size": 0.15}
    rows = run()
    assert rows["val_size"].level == "ok" and rows["test_size"].level == "ok"


def test_held_out_items_leaking_into_training() -> None:
    assert run(profile(leaks=4, leak_examples=["t:1 = d:9"]))["held-out leaks"].level == "warn"
    assert run()["held-out leaks"].level == "ok"


def test_learning_rate_ranges_for_full_and_lora() -> None:
    data = profile(20000, n_val=3000)
    full = {"finetuning_type": "full", "num_train_epochs": 2, "warmup_ratio": 0.05}
    assert run(data, **full, learning_rate=1e-5)["learning_rate"].level == "ok"
    high = run(data, **full, learning_rate=2e-4)["learning_rate"]
    assert high.level == "warn" and high.change == {"learning_rate": 1e-5}
    assert run(learning_rate=1e-5)["learning_rate"].level == "warn", "LoRA at a full-tuning rate under-fits"
    assert run(learning_rate=3e-4)["learning_rate"].level == "ok"


def test_full_tuning_on_small_data_recommends_lora() -> None:
    r = run(finetuning_type="full", learning_rate=1e-5)["finetuning_type"]
    assert r.level == "warn" and r.change == {"finetuning_type": "lora"}
    assert run(profile(20000, n_val=3000), finetuning_type="full", learning_rate=1e-5, num_train_epochs=2,
               warmup_ratio=0.05)["finetuning_type"].level == "ok"


@pytest.mark.parametrize("n,epochs,warn", [(2000, 5, False), (2000, 1, True), (20000, 2, False), (20000, 8, True)])
def test_epochs_follow_data_size(n: int, epochs: float, warn: bool) -> None:
    data = profile(n, n_val=n // 7)
    r = run(data, num_train_epochs=epochs, warmup_ratio=sum(warmup_range(n)) / 2)["num_train_epochs"]
    assert (r.level == "warn") == warn
    assert recommended_epochs(2000) == 5 and recommended_epochs(20000) == 2


def test_recommendations_chain_and_form_a_config() -> None:
    data = profile(200, n_val=0, n_test=0, val_tokens=0)
    rows, changes = advise(load_config(None, {**GOOD, "num_train_epochs": 1}), data)
    assert changes["val_size"] == 0.15 and changes["num_train_epochs"] == recommended_epochs(140)
    cfg = load_config(None, {**GOOD, "num_train_epochs": 1, **changes})
    again, more = advise(cfg, data)
    assert not {"num_train_epochs", "per_device_train_batch_size"} & set(more), "advice is stable once applied"


@pytest.mark.parametrize("key,bad,good", [
    ("lora_rank", {"lora_rank": 128, "lora_alpha": 256}, {"lora_rank": 32, "lora_alpha": 64}),
    ("lora_dropout", {"lora_dropout": 0.5}, {"lora_dropout": 0.1}),
    ("weight_decay", {"weight_decay": 0.3}, {"weight_decay": 0.05}),
    ("lr_scheduler_type", {"lr_scheduler_type": "constant"}, {"lr_scheduler_type": "linear"}),
])
def test_secondary_settings(key: str, bad: dict, good: dict) -> None:
    flagged = run(**bad)[key]
    assert flagged.level in ("info", "warn") and flagged.change
    assert run(**good)[key].level == "ok" and not run(**good)[key].change


def test_small_datasets_get_a_note_and_larger_ones_do_not() -> None:
    assert run(profile(300, n_val=50), num_train_epochs=8, warmup_ratio=0.15)["examples"].level == "info"
    assert "examples" not in run()


def test_cutoff_within_the_models_length_is_not_flagged() -> None:
    rows = [a for a in advise(load_config(None, GOOD), profile())[0] if a.key == "cutoff_len"]
    assert [a.level for a in rows] == ["ok"]


def test_short_epochs_never_get_every_step_evaluation() -> None:
    # 40 rows / batch 8 = 5 steps per epoch: 10 per epoch would mean every step, which the notes rule out
    r = run(profile(40, n_val=10, n_test=10), num_train_epochs=8, warmup_ratio=0.15, per_device_train_batch_size=8,
            eval_steps=1)["eval_steps"]
    assert r.level == "warn" and r.change["eval_steps"] >= 2
