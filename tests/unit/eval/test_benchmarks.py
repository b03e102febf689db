"""Multiple-choice benchmarks: loading both layouts, n-shot prompts, letter scoring, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from tunesmith.cli.main import app
from tunesmith.data.templates import get_template
from tunesmith.eval.benchmarks import LETTERS, build_messages, letter_ids, load_benchmark, run_benchmark
from tunesmith.utils.errors import DataFormatError

ROOT = Path(__file__).resolve().parents[3]
MMLU = ROOT / "examples" / "benchmarks" / "mmlu_sample"
CEVAL = ROOT / "examples" / "benchmarks" / "ceval_sample"
runner = CliRunner()


class AlwaysLetter(torch.nn.Module):
    """A stand-in model whose next token is always the given letter (uniform elsewhere)."""

    def __init__(self, token_id: int, vocab: int) -> None:
        super().__init__()
        self.token_id, self.vocab = token_id, vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.calls: list[dict] = []

    def forward(self, input_ids, attention_mask, position_ids, logits_to_keep):  # noqa: ANN001, ANN201
        self.calls.append({"shape": tuple(input_ids.shape), "positions": position_ids, "mask": attention_mask})
        logits = torch.zeros(input_ids.shape[0], logits_to_keep, self.vocab)
        logits[:, -1, self.token_id] = 3.0
        return SimpleNamespace(logits=logits)


def test_loads_mmlu_and_ceval_layouts() -> None:
    mmlu = load_benchmark(MMLU)
    assert len(mmlu.questions) == 18 and {len(v) for v in mmlu.shots.values()} == {5}
    q = mmlu.questions[0]  # sorted files: elementary_mathematics first; header-less rows
    assert (q.subject, q.question, q.options[2], q.answer, q.lang) == (
        "elementary_mathematics", "What is 6 + 8?", "14", "C", "en")
    ceval = load_benchmark(CEVAL)  # test/ is absent: val/ is scored
    assert len(ceval.questions) == 18 and ceval.questions[0].lang == "zh"
    assert ceval.display("middle_school_chemistry", "zh") == "初中化学"  # subject_mapping.json


def test_n_shot_prompt_uses_solved_examples_of_the_same_subject() -> None:
    bench = load_benchmark(CEVAL)
    q = bench.questions[0]
    zero = build_messages(bench, q, 0)
    assert len(zero) == 1 and zero[0].content.startswith("以下是中国关于初中化学考试的单项选择题")
    assert zero[0].content.endswith("D. O2\n答案：")
    three = build_messages(bench, q, 3)
    assert [m.role for m in three] == ["user", "assistant"] * 3 + ["user"]
    assert [m.content for m in three if m.role == "assistant"] == ["A", "C", "B"]  # chemistry dev answers
    assert three[0].content.startswith("以下是中国关于初中化学") and "水的化学式" in three[0].content


@pytest.mark.parametrize(("path", "letter", "per_subject", "overall"), [
    (MMLU, "B", {"elementary_mathematics": 33.33, "high_school_chemistry": 33.33,
                 "high_school_geography": 33.33}, 33.33),
    (CEVAL, "B", {"middle_school_chemistry": 33.33, "middle_school_geography": 16.67,
                  "middle_school_mathematics": 33.33}, 27.78),
    (CEVAL, "A", {"middle_school_chemistry": 33.33, "middle_school_geography": 33.33,
                  "middle_school_mathematics": 16.67}, 27.78),
])
def test_accuracy_is_the_share_of_answers_the_likeliest_letter_gets_right(
        tiny_tokenizer, path: Path, letter: str, per_subject: dict, overall: float) -> None:  # noqa: ANN001
    ids = letter_ids(tiny_tokenizer)
    model = AlwaysLetter(ids[LETTERS.index(letter)], len(tiny_tokenizer))
    loaded = SimpleNamespace(model=model, tokenizer=tiny_tokenizer, template=get_template("gemma"))
    result = run_benchmark(loaded, load_benchmark(path), n_shot=2, batch_size=4)
    assert {s: v["accuracy"] for s, v in result["subjects"].items()} == per_subject
    assert result["accuracy"] == overall and result["n"] == 18
    assert all(r["choice"] == letter for r in result["questions"])
    assert result["questions"][0]["probs"][letter] == pytest.approx(1 / (1 + 3 * torch.e ** -3), abs=1e-3)
    first = model.calls[0]  # left padding: positions count real tokens only
    row = int(first["mask"].sum(1).argmin())
    pad = int((first["mask"][row] == 0).sum())
    assert pad > 0 and first["positions"][row, pad] == 0 and first["positions"][row, -1] == first["shape"][1] - pad - 1


def test_bad_rows_name_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "x_test.csv").write_text("What?,a,b,c,d,A\nWhy?,a,b,c,d,E\n")
    with pytest.raises(DataFormatError, match=r"x_test.csv:2: answer 'E'"):
        load_benchmark(tmp_path)
    with pytest.raises(DataFormatError, match="does not exist"):
        load_benchmark(tmp_path / "nope")


def test_single_jsonl_file_with_dev_rows(tmp_path: Path) -> None:
    rows = [{"subject": "s", "question": f"Q{i}", "A": "a", "B": "b", "C": "c", "D": "d", "answer": "A",
             **({"split": "dev"} if i < 2 else {})} for i in range(5)]
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bench = load_benchmark(path)
    assert len(bench.questions) == 3 and len(bench.shots["s"]) == 2


def test_benchmark_cli_runs_without_a_dataset_and_writes_results(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["eval", "--benchmark", str(CEVAL), f"model_name_or_path={tiny_model_dir}",
                                 "template=gemma", "n_shot=1", "bf16=false", f"eval_output_dir={out}"],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "benchmark-ceval_sample-1shot.json").read_text())
    model = data["models"][0]
    assert model["n"] == 18 and 0 <= model["accuracy"] <= 100 and len(model["subjects"]) == 3
    assert sum(v["correct"] for v in model["subjects"].values()) == round(model["accuracy"] * 18 / 100)
    assert "overall" in result.output and (out / "benchmark-ceval_sample-1shot.md").exists()
