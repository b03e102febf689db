"""LLM-as-judge: a model behind any OpenAI-compatible endpoint scores each answer 1-10.

The judge sees the rubric (the user's file, or the default below: correctness, completeness,
style), the question, the reference answer and the model's answer, and replies with a score and
its reasons. Replies are parsed leniently (JSON first, then "score: N" / "N/10"); a reply without a
score is kept with ``score: null`` and counted, never guessed. Every reason is saved beside the
predictions (``judge.jsonl``) so a surprising score can be read, not just trusted.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.utils.errors import ConfigError, ModelLoadError

DEFAULT_RUBRIC = """\
Score from 1 (worst) to 10 (best), weighing:
- Correctness (most weight): does the answer say what the reference answer says? Wrong facts or a
  wrong final answer cap the score at 3.
- Completeness: does it answer everything the question asks, without leaving parts out?
- Style: is it clear, concise, and in the language and format the question asks for?
An answer that matches the reference in meaning and is well written gets 9-10."""

PROMPT = """You are grading an AI assistant's answer to a question.

Rubric:
{rubric}

Question:
{prompt}

Reference answer:
{reference}

Assistant's answer:
{prediction}

Reply with JSON only, in this shape: {{"score": <integer 1-10>, "reason": "<one to three sentences>"}}"""

_SCORE_PATTERNS = (
    re.compile(r"score\W{0,5}(\d+(?:\.\d+)?)", re.IGNORECASE),
    re.compile(r"(\d+(?:\.\d+)?)\s*/\s*10\b"),
    re.compile(r"(?:评分|得分|分数)\D{0,5}(\d+(?:\.\d+)?)"),
)


@dataclass
class Verdict:
    """The judge's score (1-10, or None when its reply held none) and its reasons."""

    score: float | None
    reason: str
    raw: str


def parse_verdict(text: str) -> Verdict:
    """Read a score and reason from a judge reply (JSON, or free text with 'score: N' / 'N/10')."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match:
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("score"), (int, float, str)):
            try:
                score = float(obj["score"])
            except ValueError:
                score = None
            if score is not None:
                return Verdict(min(10.0, max(1.0, score)), str(obj.get("reason", "")).strip(), text)
    for pattern in _SCORE_PATTERNS:
        m = pattern.search(text)
        if m:
            return Verdict(min(10.0, max(1.0, float(m.group(1)))), text.strip(), text)
    return Verdict(None, text.strip(), text)


def read_rubric(path: str | None) -> str:
    """The user's rubric file, or the default rubric."""
    if not path:
        return DEFAULT_RUBRIC
    p = Path(path)
    if not p.is_file():
        raise ConfigError([f"'judge_rubric': {path!r} is not a file"])
    text = p.read_text(encoding="utf-8").strip()
    if not text:
        raise ConfigError([f"'judge_rubric': {path!r} is empty"])
    return text


class Judge:
    """Asks one model at an OpenAI-compatible endpoint to grade answers."""

    def __init__(self, endpoint: str, model: str | None = None, *, api_key: str | None = None,
                 rubric: str = DEFAULT_RUBRIC, timeout: float = 120.0, workers: int = 4) -> None:
        from openai import OpenAI

        self.endpoint = endpoint
        self.client = OpenAI(base_url=endpoint, api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
                             timeout=timeout, max_retries=1)
        self.rubric = rubric
        self.workers = workers
        self.model = model or self._only_model()

    def _call(self, fn: Any) -> Any:
        from openai import APIConnectionError, APIStatusError

        try:
            return fn()
        except APIConnectionError as exc:
            raise ModelLoadError(f"cannot reach the judge endpoint {self.endpoint!r}: {exc}",
                                 hint="check judge_endpoint (e.g. http://127.0.0.1:8000/v1) and that the "
                                 "server runs") from exc
        except APIStatusError as exc:
            raise ModelLoadError(f"the judge endpoint {self.endpoint!r} refused the request "
                                 f"({exc.status_code}): {exc.message}",
                                 hint="check judge_model and judge_api_key (or OPENAI_API_KEY)") from exc

    def _only_model(self) -> str:
        models = [m.id for m in self._call(lambda: self.client.models.list()).data]
        if not models:
            raise ModelLoadError(f"the judge endpoint {self.endpoint!r} lists no models",
                                 hint="set judge_model to the model name the server expects")
        return models[0]

    def grade(self, prompt: str, reference: str, prediction: str) -> Verdict:
        """One answer's verdict."""
        content = PROMPT.format(rubric=self.rubric, prompt=prompt, reference=reference, prediction=prediction)
        resp = self._call(lambda: self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": content}], temperature=0.0, max_tokens=300))
        return parse_verdict(resp.choices[0].message.content or "")

    def grade_rows(self, rows: list[dict[str, Any]], progress: Any = None) -> list[Verdict]:
        """Verdicts for rows with prompt / reference / prediction, in order (a few requests at once)."""
        def one(row: dict[str, Any]) -> Verdict:
            verdict = self.grade(row.get("prompt", ""), row["reference"], row["prediction"])
            if progress is not None:
                progress(1)
            return verdict

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(one, rows))


def judge_summary(verdicts: list[Verdict]) -> dict[str, Any]:
    """Mean score over the replies that held one, and how many did not."""
    scored = [v.score for v in verdicts if v.score is not None]
    return {"judge_score": round(sum(scored) / len(scored), 4) if scored else None,
            "judge_unscored": len(verdicts) - len(scored)}
