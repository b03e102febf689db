"""The OpenAI-compatible API, driven by the official ``openai`` client against a tiny model on a local port."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

import httpx
import pytest

from tunesmith.config import load_config
from tunesmith.serve.server import ServerThread, build_app

KEY = "test-key"


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tiny_adapters: dict[str, Path]):  # noqa: ANN201 - (url, engine)
    cfg = load_config(None, {
        "model_name_or_path": str(tiny_model_dir), "template": "gemma", "dataset": "unused", "bf16": False,
        "adapters": [f"{name}={path}" for name, path in tiny_adapters.items()], "served_model_name": "base",
        "api_key": KEY, "max_new_tokens": 8, "max_batch_size": 8, "max_request_kb": 4,
    })
    app, engine = build_app(cfg)
    with ServerThread(app) as url:
        yield url, engine
    engine.stop()


@pytest.fixture
def client(server):  # noqa: ANN001, ANN201
    from openai import OpenAI

    return OpenAI(base_url=server[0] + "/v1", api_key=KEY, max_retries=0, timeout=60)


def test_serve_config_defaults_to_loopback() -> None:
    # `tunesmith serve` without --host: tests/unit/cli/test_serve_command.py checks the socket it listens on.
    assert load_config(None, {"dataset": "unused"}).serve.host == "127.0.0.1"


def test_models_lists_base_and_adapters(client) -> None:  # noqa: ANN001
    ids = [m.id for m in client.models.list().data]
    assert ids == ["base", "alpha", "beta"]
    assert client.models.retrieve("alpha").id == "alpha"


def test_chat_completion_and_adapters_differ(client, server) -> None:  # noqa: ANN001
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 3?"}]
    answers = {}
    for name in ("base", "alpha", "beta"):
        r = client.chat.completions.create(model=name, messages=messages, max_tokens=6, temperature=0)
        assert r.object == "chat.completion" and r.model == name
        assert r.choices[0].message.role == "assistant"
        assert r.choices[0].finish_reason in ("stop", "length")
        assert 1 <= r.usage.completion_tokens <= 6 and r.usage.prompt_tokens > 5
        answers[name] = r.choices[0].message.content
    # random adapters on a random model: each answers differently, proving the request picked the adapter
    assert len(set(answers.values())) == 3, answers
    # the same request again gives the same greedy answer (the base was not disturbed by adapter switching)
    again = client.chat.completions.create(model="base", messages=messages, max_tokens=6, temperature=0)
    assert again.choices[0].message.content == answers["base"]


def test_chat_streaming_matches_non_streaming(client) -> None:  # noqa: ANN001
    messages = [{"role": "user", "content": "Name the subject: What does the heart do?"}]
    full = client.chat.completions.create(model="alpha", messages=messages, max_tokens=8, temperature=0)
    stream = client.chat.completions.create(model="alpha", messages=messages, max_tokens=8, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    pieces, finishes, usage = [], [], None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert "".join(pieces) == full.choices[0].message.content
    assert len([p for p in pieces if p]) >= 2, "tokens arrive as separate chunks"
    assert finishes == [full.choices[0].finish_reason]
    assert usage is not None and usage.completion_tokens == full.usage.completion_tokens


def test_completions_plain_and_streaming(client) -> None:  # noqa: ANN001
    r = client.completions.create(model="beta", prompt="The quick brown fox", max_tokens=5, temperature=0)
    assert r.object == "text_completion" and r.usage.completion_tokens <= 5
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="beta", prompt="The quick brown fox", max_tokens=5, temperature=0, stream=True))
    assert streamed == r.choices[0].text


def test_concurrent_requests_share_batches(client, server) -> None:  # noqa: ANN001
    engine = server[1]
    before = engine.stats.batches, engine.stats.requests

    def ask(i: int) -> str:
        model = ("base", "alpha", "beta")[i % 3]
        question = f"Question {i}" + " and" * i  # different lengths: a shared batch is left-padded
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                           max_tokens=8, temperature=0)
        return r.choices[0].message.content

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    batches, requests = engine.stats.batches - before[0], engine.stats.requests - before[1]
    assert requests == 8
    assert batches < 8, f"8 concurrent requests ran in {batches} batches: nothing was shared"
    assert engine.stats.largest_batch >= 2
    # Sharing a batch (prompts of different lengths, left-padded; mixed adapters) must not change a greedy
    # answer: each equals the same request sent on its own.
    alone = [ask(i) for i in range(8)]
    assert answers == alone
    assert len(set(answers)) > 1, "different questions and adapters give different answers"


def test_auth_is_required(server) -> None:  # noqa: ANN001
    import openai

    bad = openai.OpenAI(base_url=server[0] + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    assert info.value.status_code == 401
    assert info.value.body["code"] == "invalid_api_key"
    r = httpx.post(server[0] + "/v1/chat/completions", json={"model": "base", "messages": []})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


def test_bad_requests_get_openai_errors(client, server) -> None:  # noqa: ANN001
    import openai

    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["code"] == "model_not_found" and "alpha" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="base", messages=[{"role": "user", "content": "hi"}], max_tokens=-1)
    assert info.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="base", messages=[{"role": "assistant", "content": "hi"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="base", messages=[{"role": "wizard", "content": "hi"}])  # type: ignore
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    url = server[0] + "/v1/chat/completions"
    for body, status in ((b"{not json", 400), (b"[1, 2]", 400), (json.dumps({"model": "base"}).encode(), 400)):
        r = httpx.post(url, content=body, headers=headers)
        assert r.status_code == status, (body, r.text)
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    huge = json.dumps({"model": "base", "messages": [{"role": "user", "content": "x" * 10_000}]})
    r = httpx.post(url, content=huge, headers=headers)
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]
