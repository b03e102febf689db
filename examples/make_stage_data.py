"""Write the small datasets behind the training-stage examples (pt, rm, dpo, kto, grpo, multistage).

All of them grow out of the quickstart's school-subject questions (examples/data/subjects.*.json, written by
make_quickstart_data.py), so each stage teaches the bundled model something it can be measured on:

- stage_pairs.*   preference pairs in the notes' own shape (question / positive_answer / negative_answer):
                  the right subject against a wrong one, in the question's language (rm, dpo, orpo, simpo)
- stage_kto.*     the notes' KTO shape (instruction / output / kto_tag): right answers true, wrong ones false
- stage_grpo.*    instruction / output: GRPO samples answers and scores them against the output
- stage_text.*    plain text for pre-training: a subject glossary, one document per subject and language
- stage_names.*   a second SFT task for the multi-stage example: subject names between Chinese and English

Run: python examples/make_stage_data.py  (deterministic; reads and writes examples/data/)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
NAMES = {"数学": "math", "语文": "Chinese", "英语": "English", "物理": "physics", "化学": "chemistry",
         "历史": "history", "地理": "geography", "生物": "biology"}
ZH_OF = {en: zh for zh, en in NAMES.items()}


def read(name: str) -> list[dict[str, str]]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def write(name: str, rows: list[dict]) -> None:
    (DATA / name).write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def wrong_answer(right: str, rng: random.Random) -> str:
    """Another subject in the same language as the right one."""
    pool = list(NAMES) if right in NAMES else list(ZH_OF)
    return rng.choice([s for s in pool if s != right])


def question(row: dict[str, str]) -> str:
    return f"{row['instruction']}\n{row['input']}"


def pairs(rows: list[dict[str, str]], rng: random.Random) -> list[dict[str, str]]:
    return [{"question": question(r), "positive_answer": r["output"], "negative_answer": wrong_answer(r["output"], rng)}
            for r in rows]


def kto(rows: list[dict[str, str]], rng: random.Random) -> list[dict]:
    out = []
    for i, r in enumerate(rows):  # alternate good and bad answers so both kinds are present
        good = i % 2 == 0
        out.append({"instruction": r["instruction"], "input": r["input"],
                    "output": r["output"] if good else wrong_answer(r["output"], rng), "kto_tag": good})
    return out


def glossary(rows: list[dict[str, str]]) -> list[str]:
    """One document per (subject, language): a heading and the questions that belong to it."""
    docs: dict[str, list[str]] = {}
    for r in rows:
        docs.setdefault(r["output"], []).append(r["input"])
    out = []
    for subject, qs in sorted(docs.items()):
        head = f"{subject}：下面这些题目属于{subject}。" if subject in NAMES else f"{subject}: these questions belong to {subject}."
        out.append("\n".join([head, *qs[:12]]))
    return out


NAME_PROMPTS = [("把学科名称翻译成英文：{zh}", "zh2en"), ("“{zh}”用英语怎么说？只回答一个词。", "zh2en"),
                ("Translate the subject name into Chinese: {en}", "en2zh"),
                ("What is the Chinese name of the school subject '{en}'? One word only.", "en2zh")]


def names() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    rows = []
    for k, (prompt, way) in enumerate(NAME_PROMPTS):
        for zh, en in NAMES.items():
            rows.append({"instruction": prompt.format(zh=zh, en=en), "output": en if way == "zh2en" else zh, "k": k})
    test = [{"instruction": r["instruction"], "output": r["output"]} for r in rows if r["k"] in (1, 3)][::2]
    train = [{"instruction": r["instruction"], "output": r["output"]} for r in rows
             if {"instruction": r["instruction"], "output": r["output"]} not in test]
    return train, test


def main() -> None:
    rng = random.Random(11)
    train, val, test = read("subjects.train.json"), read("subjects.val.json"), read("subjects.test.json")
    write("stage_pairs.train.json", pairs(train[:32], rng))
    write("stage_pairs.val.json", pairs(val[:12], rng))
    write("stage_kto.train.json", kto(train[:32], rng))
    write("stage_kto.val.json", kto(val[:12], rng))
    write("stage_grpo.train.json", train[:24])
    write("stage_grpo.val.json", val[:8])
    (DATA / "stage_text.train.jsonl").write_text(
        "".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in glossary(train)), encoding="utf-8")
    (DATA / "stage_text.val.txt").write_text("\n\n".join(glossary(test)) + "\n", encoding="utf-8")
    names_train, names_test = names()
    write("stage_names.train.json", names_train)
    write("stage_names.test.json", names_test)
    print(f"wrote stage_* datasets to {DATA}")


if __name__ == "__main__":
    main()
