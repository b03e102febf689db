"""The API's ``seed``: the same seed, prompt and settings give the same sampled answer, also when other
requests arrive at the same moment (a seeded request runs in a batch of its own)."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from tunesmith.config import load_config
from tunesmith.serve.server import ServerThread, build_app


@pytest.fixture(scope="module")
def client(tiny_model_dir: Path):  # noqa: ANN201 - an OpenAI client
    from openai import OpenAI

    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir), "template": "gemma", "dataset": "unused",
                             "bf16": False, "served_model_name": "base", "max_batch_size": 8})
    app, engine = build_app(cfg)
    with ServerThread(app) as url:
        yield OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=120)
    engine.stop()


def _ask(client, seed: int | None, text: str = "Tell me a story.") -> str:  # noqa: ANN001
    r = client.chat.completions.create(model="base", messages=[{"role": "user", "content": text}], max_tokens=12,
                                       temperature=1.5, seed=seed)
    return r.choices[0].message.content


def test_same_seed_same_sampled_answer(client) -> None:  # noqa: ANN001
    first = _ask(client, 7)
    assert _ask(client, 7) == first
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # others sampling at the same moment
        crowd = [pool.submit(_ask, client, None, f"Question {i}?") for i in range(3)]
        seeded = pool.submit(_ask, client, 7)
        assert seeded.result() == first
        [f.result() for f in crowd]
    assert {_ask(client, s) for s in (8, 9, 10)} != {first}, "another seed samples another answer"
