"""LLM-as-judge against a tiny fake OpenAI-compatible server on 127.0.0.1 (started by the test)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunesmith.cli.main import app
from tunesmith.eval.judge import DEFAULT_RUBRIC, Judge, judge_summary, parse_verdict
from tunesmith.utils.errors import ModelLoadError

runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake_judge() -> Iterator[tuple[str, list[dict]]]:
    """A server that scores 9 when the answer equals the reference and 2 otherwise; records requests."""
    import uvicorn
    from fastapi import FastAPI

    seen: list[dict] = []
    api = FastAPI()

    @api.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": "fake-judge", "object": "model", "created": 0, "owned_by": "t"}]}

    @api.post("/v1/chat/completions")
    def chat(body: dict) -> dict:
        seen.append(body)
        text = body["messages"][-1]["content"]
        ref = re.search(r"Reference answer:\n(.*?)\n\nAssistant's answer:", text, re.DOTALL).group(1)
        pred = text.split("Assistant's answer:\n", 1)[1].split("\n\nReply with JSON", 1)[0]
        if pred == "free text":
            content = "The answer is vague. Score: 6/10"
        elif pred == ref:
            content = json.dumps({"score": 9, "reason": "matches the reference"})
        else:
            content = "```json\n" + json.dumps({"score": 2, "reason": f"says {pred}, not {ref}"}) + "\n```"
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1", seen
    server.should_exit = True
    thread.join(timeout=10)


def test_parse_verdict_json_fenced_free_text_and_nothing() -> None:
    assert parse_verdict('{"score": 8, "reason": "good"}').score == 8
    fenced = parse_verdict('```json\n{"score": "7", "reason": "ok"}\n```')
    assert (fenced.score, fenced.reason) == (7.0, "ok")
    assert parse_verdict("Overall I'd give it 4/10.").score == 4
    assert parse_verdict("评分：9，回答正确。").score == 9
    assert parse_verdict('{"score": 15}').score == 10  # clamped to the scale
    assert parse_verdict("I cannot grade this.").score is None


def test_judge_scores_rows_with_the_rubric_and_keeps_reasons(fake_judge: tuple[str, list[dict]]) -> None:
    url, seen = fake_judge
    judge = Judge(url, rubric="Only correctness matters.")
    assert judge.model == "fake-judge"  # the only model the endpoint lists
    rows = [{"prompt": "2+3?", "reference": "5", "prediction": "5"},
            {"prompt": "水的化学式？", "reference": "H2O", "prediction": "CO2"},
            {"prompt": "x", "reference": "y", "prediction": "free text"}]
    verdicts = judge.grade_rows(rows)
    assert [v.score for v in verdicts] == [9, 2, 6]
    assert verdicts[1].reason == "says CO2, not H2O"
    assert all("Only correctness matters." in b["messages"][-1]["content"] for b in seen)
    assert all(b["temperature"] == 0.0 and b["model"] == "fake-judge" for b in seen)
    assert judge_summary(verdicts) == {"judge_score": pytest.approx(17 / 3, abs=1e-4), "judge_unscored": 0}


def test_unreachable_judge_is_a_clear_error() -> None:
    with pytest.raises(ModelLoadError, match="cannot reach the judge endpoint"):
        Judge(f"http://127.0.0.1:{_free_port()}/v1", "m", timeout=2)._only_model()


def test_eval_predictions_with_judge_saves_scores_and_reasons(fake_judge: tuple[str, list[dict]],
                                                              tmp_path: Path) -> None:
    url, seen = fake_judge
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"prompt": "q1", "reference": "数学", "prediction": "数学"}\n'
                     '{"prompt": "q2", "reference": "history", "prediction": "biology"}\n', encoding="utf-8")
    result = runner.invoke(app, ["eval", "--predictions", str(preds), f"judge_endpoint={url}",
                                 "judge_model=fake-judge", f"eval_output_dir={tmp_path / 'out'}"],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    judged = [json.loads(x) for x in (tmp_path / "out" / "judge.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(j["score"], j["reason"]) for j in judged] == [(9, "matches the reference"),
                                                          (2, "says biology, not history")]
    metrics = json.loads((tmp_path / "out" / "p.metrics.json").read_text())
    assert metrics["judge_score"] == 5.5 and metrics["judge"]["model"] == "fake-judge"
    assert DEFAULT_RUBRIC.splitlines()[1] in seen[0]["messages"][-1]["content"]  # no rubric file: the default
    assert "judge_score" in result.output


def test_rubric_file_is_found_beside_the_config(fake_judge: tuple[str, list[dict]], tmp_path: Path) -> None:
    from tunesmith.config import load_config
    from tunesmith.eval.evaluate import ModelEval
    from tunesmith.eval.pipeline import make_judge

    url, seen = fake_judge
    (tmp_path / "rubric.txt").write_text("Grade only the subject name.")
    (tmp_path / "c.yaml").write_text(f"dataset: x\njudge_endpoint: {url}\njudge_rubric: rubric.txt\n")
    ev = ModelEval("m", {}, [{"prompt": "p", "reference": "数学", "prediction": "数学"}])
    make_judge(load_config(tmp_path / "c.yaml"))(ev)
    assert ev.rows[0]["judge"] == {"score": 9, "reason": "matches the reference"}
    assert ev.metrics == {"judge_score": 9.0, "judge_unscored": 0}
    assert "Grade only the subject name." in seen[0]["messages"][-1]["content"]
