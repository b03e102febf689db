"""Paraphrases from a model: an OpenAI-compatible endpoint (a fake server on 127.0.0.1) and a local model."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunesmith.advise.llm import local_backend, openai_backend
from tunesmith.cli.main import app
from tunesmith.utils.errors import ModelLoadError


class FakeOpenAI(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions with numbered rewrites of the instruction it was sent."""

    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        instruction = body["messages"][-1]["content"].rsplit("\n", 1)[-1].split("：", 1)[-1].split(": ", 1)[-1]
        reply = "\n".join(f"{i}. {instruction} (version {i})" for i in (1, 2, 3))
        payload = json.dumps({
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_server() -> Iterator[str]:
    FakeOpenAI.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_openai_backend_talks_to_the_endpoint(fake_server: str) -> None:
    ask = openai_backend(fake_server, "fake-model", api_key="secret")
    (reply,) = ask(["Rewrite ...\nInstruction: Classify the subject."])
    assert "Classify the subject. (version 1)" in reply
    (req,) = FakeOpenAI.requests
    assert req["path"] == "/v1/chat/completions" and req["body"]["model"] == "fake-model"
    assert req["auth"] == "Bearer secret"


def test_unreachable_endpoint_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    with pytest.raises(ModelLoadError, match="cannot reach"):
        openai_backend(f"http://127.0.0.1:{port}/v1", "m", timeout=2)(["hi"])


def test_augment_with_an_endpoint_caches_so_a_rerun_asks_nothing(fake_server: str, tmp_path: Path,
                                                                  alpaca_rows: list[dict]) -> None:
    src = tmp_path / "train.json"
    src.write_text(json.dumps(alpaca_rows + alpaca_rows[:2], ensure_ascii=False), encoding="utf-8")
    cache = tmp_path / "cache.json"
    args = ["data", "augment", str(src), "--paraphrase", "--model", "fake-model", "--endpoint", fake_server,
            "--cache", str(cache), "--copies", "2", "--out", str(tmp_path / "out.json")]
    runner = CliRunner()
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert len(FakeOpenAI.requests) == 8, "one request per distinct instruction"
    out = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert len(out) == 10 + 10 * 2
    assert out[10]["instruction"].endswith(")") and "(version" in out[10]["instruction"]
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert len(FakeOpenAI.requests) == 8, "the second run is served from the cache"
    assert "0 instruction(s) asked, 8 from the cache" in again.output
    assert json.loads((tmp_path / "out.json").read_text(encoding="utf-8")) == out


def test_local_model_backend_generates(tiny_model_dir: Path) -> None:
    ask = local_backend(str(tiny_model_dir), template="gemma", max_new_tokens=8)
    replies = ask(["Rewrite: Classify the subject.", "改写：判断学科。"])
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)
