"""`tunesmith serve` itself: a real process on a free local port, the tiny model and one adapter, bounded
in time. It binds to 127.0.0.1 unless told otherwise, answers the official client, refuses a missing
key, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tunesmith.serve.server import free_port

KEY = "serve-test-key"
START_TIMEOUT_S = 120  # importing torch and loading the tiny model; a slow shared machine takes ~20 s


def _wait_until_up(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"tunesmith serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"tunesmith serve did not answer at {url} in {START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")


def test_serve_command_binds_loopback_answers_and_stops(tiny_model_dir: Path, tiny_adapters: dict[str, Path],
                                                        tmp_path: Path) -> None:
    from openai import AuthenticationError, OpenAI

    port = free_port()
    log = tmp_path / "serve.log"
    # No --host: the default must keep the server on this machine.
    cmd = [sys.executable, "-m", "tunesmith.cli.main", "serve", "--model", str(tiny_model_dir),
           "--adapters", f"alpha={tiny_adapters['alpha']}", "--port", str(port), "--api-key", KEY,
           "template=gemma", "bf16=false", "max_new_tokens=8"]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"})
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, url, log)
        listening = [c.laddr for c in psutil.Process(proc.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening == [("127.0.0.1", port)], listening
        assert f"http://127.0.0.1:{port}/v1" in log.read_text(), "the banner names the address it serves"

        client = OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=60)
        assert [m.id for m in client.models.list().data] == [tiny_model_dir.name, "alpha"]
        messages = [{"role": "user", "content": "What is 2 + 3?"}]
        answer = client.chat.completions.create(model="alpha", messages=messages, max_tokens=6, temperature=0)
        assert answer.model == "alpha" and answer.choices[0].finish_reason in ("stop", "length")
        assert 1 <= answer.usage.completion_tokens <= 6
        again = client.chat.completions.create(model="alpha", messages=messages, max_tokens=6, temperature=0)
        assert again.choices[0].message.content == answer.choices[0].message.content, "greedy is repeatable"
        try:
            OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0, timeout=30).models.list()
            raise AssertionError("a wrong API key was accepted")
        except AuthenticationError as exc:
            assert exc.status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("tunesmith serve did not stop within 30 s of SIGTERM") from None
    # uvicorn shuts down gracefully, then re-raises the signal so the parent sees how it ended
    assert code in (0, -signal.SIGTERM), f"exit code {code}:\n{log.read_text()[-3000:]}"
    assert "Traceback" not in log.read_text()
