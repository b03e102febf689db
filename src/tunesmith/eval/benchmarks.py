"""Multiple-choice benchmarks in the MMLU / C-Eval layout, scored by the likelihood of A-D.

A benchmark is a folder ``dev/{subject}_dev.csv`` (the solved examples for n-shot prompts) plus
``test/{subject}_test.csv`` or ``val/{subject}_val.csv`` (the scored questions; C-Eval's test set has
no answers, so its ``val`` is scored). Rows are MMLU's header-less ``question,A,B,C,D,answer`` or
C-Eval's ``id,question,A,B,C,D,answer[,explanation]``. An optional ``subject_mapping.json``
(C-Eval's) gives display names: ``{"subject": ["English name", "中文名", "category"]}``.
A single CSV / JSON / JSON Lines file with a ``subject`` column (and ``split: dev`` on shot rows)
works too.

Each question is asked through the model's chat template, after ``n_shot`` solved questions of the
same subject as earlier turns (LLaMA-Factory's layout); the answer is the letter among A-D whose
token is most likely as the first token of the reply. Accuracy is reported per subject and overall.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.data.records import Message
from tunesmith.data.tokenize import encode_prompt
from tunesmith.model.generate import prepare_for_generation
from tunesmith.utils.errors import DataFormatError

LETTERS = ("A", "B", "C", "D")
_CJK = re.compile(r"[\u3400-\u9fff]")
HEADS = {
    "en": ("The following are multiple choice questions (with answers) about {subject}.\n\n", "\nAnswer:"),
    "zh": ("以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n", "\n答案："),
}


@dataclass
class Question:
    """One multiple-choice question."""

    subject: str
    question: str
    options: tuple[str, str, str, str]
    answer: str  # "A".."D", or "" when the file has no answers (C-Eval test)
    origin: str = ""

    @property
    def lang(self) -> str:
        return "zh" if _CJK.search(self.question + "".join(self.options)) else "en"


@dataclass
class Benchmark:
    """Scored questions, solved examples per subject for n-shot prompts, and subject display names."""

    name: str
    questions: list[Question]
    shots: dict[str, list[Question]]
    names: dict[str, tuple[str, str]]  # subject -> (English, Chinese)

    def display(self, subject: str, lang: str = "en") -> str:
        en, zh = self.names.get(subject, (subject.replace("_", " "), subject.replace("_", " ")))
        return zh if lang == "zh" else en


def _question(row: dict[str, Any], subject: str, origin: str) -> Question:
    missing = [k for k in ("question", *LETTERS) if not str(row.get(k, "")).strip()]
    if missing:
        raise DataFormatError(f"{origin}: missing {', '.join(missing)}",
                              hint="rows need question, A, B, C, D and answer (MMLU / C-Eval layout)")
    answer = str(row.get("answer") or "").strip().upper()
    if answer and answer not in LETTERS:
        raise DataFormatError(f"{origin}: answer {row.get('answer')!r} is not one of A, B, C, D")
    return Question(str(row.get("subject") or subject), str(row["question"]).strip(),
                    tuple(str(row[k]).strip() for k in LETTERS), answer, origin)  # type: ignore[arg-type]


def _read_csv(path: Path, subject: str) -> list[Question]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return []
    head = [c.strip().lower() for c in rows[0]]
    if "question" in head:  # C-Eval (and any file with a header)
        keys = [c.strip().upper() if c.strip().upper() in LETTERS else c.strip().lower() for c in rows[0]]
        records = [(i + 2, dict(zip(keys, r))) for i, r in enumerate(rows[1:]) if any(c.strip() for c in r)]
    else:  # MMLU: question, A, B, C, D, answer without a header
        keys = ["question", *LETTERS, "answer"]
        records = [(i + 1, dict(zip(keys, r))) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    return [_question(rec, subject, f"{path}:{line}") for line, rec in records]


def _read_records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else [json.loads(x) for x in text.splitlines() if x.strip()]
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    if not isinstance(data, list):
        raise DataFormatError(f"{path}: expected a list of questions")
    return data


def _subject_of(path: Path, split: str) -> str:
    stem = path.stem
    return stem[: -len(split) - 1] if stem.endswith(f"_{split}") else stem


def _folder_split(root: Path, split: str) -> list[Question]:
    folder = root / split
    return [q for f in sorted(folder.glob("*.csv")) for q in _read_csv(f, _subject_of(f, split))]


def _load_folder(root: Path) -> tuple[list[Question], list[Question]]:
    shots = _folder_split(root, "dev") if (root / "dev").is_dir() else []
    for split in ("test", "val"):
        if (root / split).is_dir():
            questions = _folder_split(root, split)
            if questions and all(q.answer for q in questions):
                return questions, shots
    raise DataFormatError(f"{root}: no test/ or val/ folder with answered questions",
                          hint="layout: dev/{subject}_dev.csv and test/{subject}_test.csv (or val/...)")


def _load_file(path: Path) -> tuple[list[Question], list[Question]]:
    if path.suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            records = list(csv.DictReader(fh))
    else:
        records = _read_records(path)
    questions, shots = [], []
    for i, rec in enumerate(records, 1):
        if not isinstance(rec, dict):
            raise DataFormatError(f"{path}:{i}: expected an object with question, A-D, answer, subject")
        q = _question(rec, path.stem, f"{path}:{i}")
        (shots if str(rec.get("split", "")).lower() == "dev" else questions).append(q)
    return questions, shots


def load_benchmark(path: str | Path) -> Benchmark:
    """Read a benchmark folder (MMLU / C-Eval layout) or a single file."""
    p = Path(path)
    if not p.exists():
        raise DataFormatError(f"benchmark {str(p)!r} does not exist",
                              hint="e.g. --benchmark examples/benchmarks/mmlu_sample")
    questions, shot_list = _load_folder(p) if p.is_dir() else _load_file(p)
    if not questions:
        raise DataFormatError(f"benchmark {str(p)!r} holds no questions")
    missing = [q.origin for q in questions if not q.answer]
    if missing:
        raise DataFormatError(f"{missing[0]}: no answer ({len(missing)} questions without one)")
    shots: dict[str, list[Question]] = defaultdict(list)
    for q in shot_list:
        shots[q.subject].append(q)
    names: dict[str, tuple[str, str]] = {}
    mapping = p / "subject_mapping.json" if p.is_dir() else None
    if mapping is not None and mapping.exists():
        for subject, value in json.loads(mapping.read_text(encoding="utf-8")).items():
            if isinstance(value, list) and len(value) >= 2:
                names[subject] = (str(value[0]), str(value[1]))
    return Benchmark(p.name if p.is_dir() else p.stem, questions, dict(shots), names)


def format_question(q: Question) -> str:
    """The question and its options, ending with 'Answer:' (or '答案：')."""
    options = "".join(f"\n{letter}. {text}" for letter, text in zip(LETTERS, q.options))
    return q.question + options + HEADS[q.lang][1]


def build_messages(bench: Benchmark, q: Question, n_shot: int) -> list[Message]:
    """Solved questions of the same subject as earlier turns, then the question."""
    shots = [s for s in bench.shots.get(q.subject, []) if s.question != q.question][:n_shot]
    head = HEADS[q.lang][0].format(subject=bench.display(q.subject, q.lang))
    messages: list[Message] = []
    for s in shots:
        messages += [Message("user", format_question(s)), Message("assistant", s.answer)]
    messages.append(Message("user", format_question(q)))
    messages[0] = Message("user", head + messages[0].content)
    return messages


def letter_ids(tokenizer: Any) -> list[int]:
    """The token a reply starting with A, B, C or D begins with."""
    ids = [tokenizer.encode(letter, add_special_tokens=False) for letter in LETTERS]
    if any(not x for x in ids) or len({x[0] for x in ids}) < 4:
        raise DataFormatError("the tokenizer does not give A, B, C and D distinct tokens")
    return [x[0] for x in ids]


def choose(loaded: Any, prompts: list[list[int]], batch_size: int = 8) -> list[tuple[str, list[float]]]:
    """For each prompt: the most likely letter and the probabilities of A-D (renormalized)."""
    import torch

    prepare_for_generation(loaded.model)  # the same last-position logits trap as in generation
    letters = torch.tensor(letter_ids(loaded.tokenizer))
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    device = next(loaded.model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[tuple[str, list[float]]] = [("", [])] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):  # left padding: the last position is every prompt's end
            ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]):] = 1
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = loaded.model(input_ids=ids.to(device), attention_mask=mask.to(device),
                                  position_ids=positions.to(device), logits_to_keep=1).logits[:, -1, :]
        probs = torch.softmax(logits.float()[:, letters.to(logits.device)], dim=-1)
        for row, i in enumerate(idx):
            p = probs[row].tolist()
            out[i] = (LETTERS[max(range(4), key=lambda k: p[k])], p)
    return out


def run_benchmark(loaded: Any, bench: Benchmark, *, n_shot: int = 0, batch_size: int = 8) -> dict[str, Any]:
    """Accuracy (0-100) per subject and overall, and every question's choice."""
    tok = loaded.tokenizer
    prompts = [encode_prompt(build_messages(bench, q, n_shot), None, loaded.template, tok) for q in bench.questions]
    choices = choose(loaded, prompts, batch_size)
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    rows = []
    for q, (letter, probs) in zip(bench.questions, choices):
        per[q.subject][0] += int(letter == q.answer)
        per[q.subject][1] += 1
        rows.append({"subject": q.subject, "question": q.question, "answer": q.answer, "choice": letter,
                     "probs": dict(zip(LETTERS, [round(x, 4) for x in probs])), "origin": q.origin})
    subjects = {s: {"name": bench.display(s, "en"), "correct": c, "n": n, "accuracy": round(100 * c / n, 2)}
                for s, (c, n) in sorted(per.items())}
    correct = sum(v["correct"] for v in subjects.values())
    return {
        "benchmark": bench.name, "n_shot": n_shot, "n": len(rows),
        "accuracy": round(100 * correct / len(rows), 2),
        "macro_accuracy": round(sum(v["accuracy"] for v in subjects.values()) / len(subjects), 2),
        "subjects": subjects, "questions": rows,
    }
