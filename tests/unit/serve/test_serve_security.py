"""API security and limits on a tiny model: every route refuses a missing / wrong / non-Bearer key,
/health tells nothing, bodies are bounded also when chunked, request limits are 4xx in OpenAI's shape,
and concurrent greedy answers equal the sequential ones."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tunesmith.config import load_config
from tunesmith.serve.api import Service, create_app
from tunesmith.serve.server import ServerThread, build_app, defaults_from

KEY = "s3cret-key"
CHAT = {"model": "base", "messages": [{"role": "user", "content": "What is 2 + 3?"}], "max_tokens": 3}
COMPLETION = {"model": "base", "prompt": "Hello world", "max_tokens": 3}
ROUTES = {
    "GET /v1/models": ("GET", "/v1/models", None),
    "GET /v1/models/base": ("GET", "/v1/models/base", None),
    "POST /v1/chat/completions": ("POST", "/v1/chat/completions", CHAT),
    "POST /v1/chat/completions stream": ("POST", "/v1/chat/completions", {**CHAT, "stream": True}),
    "POST /v1/completions": ("POST", "/v1/completions", COMPLETION),
    "POST /v1/completions stream": ("POST", "/v1/completions", {**COMPLETION, "stream": True}),
}
BAD_AUTH = {
    "no key": {},
    "wrong key": {"Authorization": "Bearer wrong-key"},
    "prefix of the key": {"Authorization": f"Bearer {KEY[:-1]}"},
    "non-Bearer scheme": {"Authorization": f"Basic {KEY}"},
    "key without a scheme": {"Authorization": KEY},
    "non-ASCII key": {"Authorization": "Bearer ключ".encode()},
}


@pytest.fixture(scope="module")
def servers(tiny_model_dir: Path) -> Iterator[dict]:
    """One engine, two apps: with an API key and a 4 KB body limit, and without a key but with small
    message limits."""
    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir), "template": "gemma", "dataset": "unused",
                             "bf16": False, "served_model_name": "base", "api_key": KEY, "max_new_tokens": 8,
                             "max_batch_size": 8, "max_request_kb": 4})
    app, engine = build_app(cfg)
    limited = create_app(Service(engine, defaults=defaults_from(cfg), max_body_bytes=1 << 20, max_tokens_limit=64,
                                 max_messages=3, max_message_chars=200))
    with ServerThread(app) as url, ServerThread(limited) as limited_url:
        yield {"url": url, "limited": limited_url, "engine": engine}
    engine.stop()


def _call(url: str, method: str, path: str, body: dict | None, headers: dict) -> httpx.Response:
    return httpx.request(method, url + path, json=body, headers=headers, timeout=60)


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("auth", list(BAD_AUTH))
def test_every_route_refuses_a_bad_key(servers: dict, route: str, auth: str) -> None:
    method, path, body = ROUTES[route]
    r = _call(servers["url"], method, path, body, BAD_AUTH[auth])
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/json")  # an error, not an event stream
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"


@pytest.mark.parametrize("route", list(ROUTES))
def test_every_route_accepts_the_right_key(servers: dict, route: str) -> None:
    method, path, body = ROUTES[route]
    r = _call(servers["url"], method, path, body, {"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200, r.text
    if body and body.get("stream"):
        assert r.text.rstrip().endswith("data: [DONE]")


def test_health_needs_no_key_and_tells_nothing(servers: dict) -> None:
    r = httpx.get(servers["url"] + "/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def _chunks(total: int, size: int = 1024) -> Iterator[bytes]:
    body = json.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * total}]}).encode()
    for i in range(0, len(body), size):
        yield body[i:i + size]


def test_chunked_bodies_are_bounded_too(servers: dict) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    url = servers["url"] + "/v1/chat/completions"
    r = httpx.post(url, content=_chunks(50_000), headers=headers, timeout=60)  # no Content-Length: chunked
    assert r.request.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.request.headers
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "request_too_large"
    small = httpx.post(url, content=_chunks(100), headers=headers, timeout=60)
    assert small.status_code == 200, small.text  # a chunked body under the limit is read as usual


def test_a_chunked_body_is_refused_at_the_limit_not_at_its_end(servers: dict) -> None:
    """A client that keeps sending (here: 8 KB, then nothing, the body never ends) gets its 413 as soon as
    the limit is passed; a server that read the whole body first would wait for the rest forever."""
    import socket
    from urllib.parse import urlparse

    where = urlparse(servers["url"])
    with socket.create_connection((where.hostname, where.port), timeout=20) as sock:
        sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {where.netloc}\r\nAuthorization: Bearer {KEY}\r\n"
                     "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        for chunk in _chunks(8 * 1024):
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        answer = sock.recv(4096).decode(errors="replace")  # no terminating chunk was sent
    assert answer.startswith("HTTP/1.1 413"), answer


@pytest.mark.parametrize("body,param", [
    ({**CHAT, "max_tokens": 65}, "max_tokens"),
    ({**CHAT, "max_completion_tokens": 10_000}, "max_tokens"),
    ({**CHAT, "max_tokens": 0}, "max_tokens"),
    ({**CHAT, "n": 2}, "n"),
    ({**CHAT, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({**CHAT, "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}] * 2},
     "messages"),
    ({**CHAT, "messages": [{"role": "user", "content": "x" * 201}]}, "messages[0].content"),
    ({**CHAT, "messages": [{"role": "user", "content": [{"type": "text", "text": "y" * 201}]}]},
     "messages[0].content"),
    ({**CHAT, "temperature": 5}, "temperature"),
    ({**COMPLETION, "max_tokens": 65}, "max_tokens"),
])
def test_request_limits_are_openai_errors(servers: dict, body: dict, param: str) -> None:
    path = "/v1/completions" if "prompt" in body else "/v1/chat/completions"
    r = httpx.post(servers["limited"] + path, json=body, timeout=60)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param


PROMPTS = ["What is 2 + 3?", "Hello", "Which school subject does this question belong to? Answer with one word.",
           "数学 语文 英语", "The quick brown fox", "你好", "Name the subject: the heart pumps blood.", "1 2 3 4 5",
           "Classify the subject.", "Hello world, how are you today?", "物理 化学", "Give a synonym for happy."]


def test_concurrent_greedy_answers_equal_sequential_ones(servers: dict) -> None:
    """Twelve different prompts at once (sharing batches, left-padded to each other) answer exactly what
    each answers alone."""
    engine = servers["engine"]
    headers = {"Authorization": f"Bearer {KEY}"}

    def ask(prompt: str) -> tuple[str, int]:
        body = {"model": "base", "messages": [{"role": "user", "content": prompt}], "max_tokens": 12,
                "temperature": 0}
        r = httpx.post(servers["url"] + "/v1/chat/completions", json=body, headers=headers, timeout=120)
        assert r.status_code == 200, r.text
        out = r.json()
        return out["choices"][0]["message"]["content"], out["usage"]["completion_tokens"]

    alone = [ask(p) for p in PROMPTS]
    batches = engine.stats.batches
    with concurrent.futures.ThreadPoolExecutor(len(PROMPTS)) as pool:
        together = list(pool.map(ask, PROMPTS))
    assert engine.stats.batches - batches < len(PROMPTS), "the concurrent requests never shared a batch"
    assert together == alone
    assert any(n > 0 for _, n in alone)


def test_a_client_that_leaves_mid_stream_frees_its_slot(servers: dict) -> None:
    """A stream asking for 900 tokens, dropped after its first one, stops generating: counted in tokens
    the engine produced, not in time (the engine stops a row whose client left at its next step)."""
    import time

    engine = servers["engine"]
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"model": "base", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 900,
            "temperature": 0, "stream": True}
    before = engine.stats.generated_tokens
    with httpx.stream("POST", servers["url"] + "/v1/chat/completions", json=body, headers=headers,
                      timeout=120) as r:
        for line in r.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                break  # leave after the first token
    follow = httpx.post(servers["url"] + "/v1/chat/completions", headers=headers, timeout=120,
                        json={**body, "stream": False, "max_tokens": 4})
    assert follow.status_code == 200
    deadline = time.time() + 60
    while engine.stats.generated_tokens == before and time.time() < deadline:  # counted when a batch ends
        time.sleep(0.1)
    assert engine.stats.generated_tokens - before < 200, "the dropped stream kept generating"
