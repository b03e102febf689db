"""serve_backend llama.cpp: a tuned tiny Gemma 3, exported as GGUF by 'tunesmith export', served by llama.cpp
through chat and the API, answers token for token what transformers answers on the same (fp16-rounded)
weights, stops at <end_of_turn>, and frees the engine when a client leaves.

Skipped where llama-cpp-python is not installed (CI does not build it; scripts/install_llamacpp.sh does).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest
import torch

pytest.importorskip("llama_cpp")

from conftest import make_lora_adapter  # noqa: E402
from tunesmith.config import load_config  # noqa: E402
from tunesmith.data.records import Message  # noqa: E402
from tunesmith.data.tokenize import encode_prompt  # noqa: E402
from tunesmith.inference.load import Loaded  # noqa: E402
from tunesmith.model.generate import GenerationSettings, generate_ids  # noqa: E402
from tunesmith.serve.chat import ChatSession  # noqa: E402
from tunesmith.serve.llama_cpp import LlamaCppEngine, load_llama_cpp_engine  # noqa: E402
from tunesmith.utils.errors import ModelLoadError  # noqa: E402

QUESTIONS = ["What is 2 + 3?", "Hello", "数学 语文 英语", "The quick brown fox", "你好", "1 2 3 4 5",
             "Give a synonym for happy.", "Classify the subject.", "物理 化学", "history"]
LIMIT = 16


@pytest.fixture(scope="module")
def export(tiny_gguf_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tuned tiny Gemma 3 exported as 'tunesmith export' writes it: merged folder + gguf/export-f16.gguf.

    <end_of_turn>'s (tied) embedding is made twice token 178's, so a greedy answer ends where it would have
    said 178: some answers stop early, others run to the limit (the parity test checks both happen)."""
    from transformers import AutoModelForCausalLM

    from tunesmith.export.run import run_export

    root = tmp_path_factory.mktemp("llama-engine")
    base = root / "base"
    shutil.copytree(tiny_gguf_model_dir, base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[5] = 2.0 * emb[178]
    model.save_pretrained(base)
    adapter = make_lora_adapter(base, root / "adapter", seed=3, scale=0.2)
    run_export(load_config(None, {
        "model_name_or_path": str(base), "adapter_name_or_path": str(adapter), "template": "gemma",
        "dataset": "unused", "bf16": False, "export_dir": str(root / "export"), "export_quantization": "gguf-f16",
        "export_check_tokens": 8, "export_check_samples": 2}))
    return root / "export"


def _cfg(model: Path | str, **extra: object):  # noqa: ANN202 - a Config
    return load_config(None, {"model_name_or_path": str(model), "template": "gemma", "dataset": "unused",
                              "bf16": False, "serve_backend": "llama.cpp", **extra})


@pytest.fixture(scope="module")
def engine(export: Path):  # noqa: ANN201 - a started LlamaCppEngine
    warnings: list[str] = []
    eng = load_llama_cpp_engine(_cfg(export), warn=warnings.append)
    assert warnings == [], "the export's GGUF carries the training template and every end-of-turn id"
    yield eng
    eng.stop()


@pytest.fixture(scope="module")
def reference(export: Path, engine: LlamaCppEngine) -> Loaded:
    """transformers on the merged folder, each matrix rounded to fp16 as the GGUF stores it (norms stay fp32)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.copy_(p.half().float())
    return Loaded(model, engine.tokenizer, engine.template, engine.stop_ids, str(export))


def _prompt(engine: LlamaCppEngine, question: str) -> list[int]:
    return encode_prompt([Message("user", question)], None, engine.template, engine.tokenizer)


def _greedy(reference: Loaded, prompts: list[list[int]], limit: int = LIMIT) -> list[list[int]]:
    return generate_ids(reference.model, prompts, stop_ids=reference.stop_ids, pad_id=0,
                        settings=GenerationSettings(max_new_tokens=limit), batch_size=1)


def test_greedy_tokens_equal_transformers_on_the_same_weights(engine: LlamaCppEngine, reference: Loaded) -> None:
    assert engine.model_names == ["export"] and engine.processor is None and engine.max_batch_size == 1
    prompts = [_prompt(engine, q) for q in QUESTIONS]
    want = _greedy(reference, prompts)
    got = [engine.generate(p, GenerationSettings(max_new_tokens=LIMIT)) for p in prompts]
    assert [r.tokens for r in got] == want
    reasons = [r.finish_reason for r in got]
    assert reasons == ["stop" if len(w) < LIMIT else "length" for w in want]
    assert "stop" in reasons and "length" in reasons, "the fixture must end some answers at <end_of_turn>"
    assert any(0 < len(w) < LIMIT for w in want), "an answer with text that then stops"


def test_sampling_settings_reach_llama_cpp(engine: LlamaCppEngine) -> None:
    p = _prompt(engine, "The quick brown fox")

    def run(**kw: object) -> list[int]:
        return engine.generate(p, GenerationSettings(**{"max_new_tokens": LIMIT, **kw})).tokens  # type: ignore[arg-type]

    greedy = run()
    assert run(temperature=1.0, top_k=1) == greedy, "top_k 1 leaves only the greedy token"
    seeded = run(temperature=1.0, seed=7)
    assert run(temperature=1.0, seed=7) == seeded != greedy
    assert run(temperature=1.0, seed=8) != seeded
    assert run(temperature=1.0) != run(temperature=1.0), "without a seed each answer draws afresh"
    assert run(repetition_penalty=2.0) != greedy, "the greedy answer repeats tokens; a penalty changes it"
    assert len(run(max_new_tokens=3)) == 3


def test_chat_session_through_the_engine_answers_like_transformers(engine: LlamaCppEngine,
                                                                   reference: Loaded) -> None:
    settings = GenerationSettings(max_new_tokens=LIMIT)
    ours, theirs = ChatSession(engine.loaded(), settings, "Be brief.", engine=engine), \
        ChatSession(reference, settings, "Be brief.")
    for question in ("Hello", "What is 2 + 3?"):
        assert "".join(ours.send(question)) == "".join(theirs.send(question))
    assert ours.history == theirs.history and len(ours.history) == 4 and ours.history[1].content


@pytest.fixture(scope="module")
def server(export: Path):  # noqa: ANN201 - (url, engine)
    from tunesmith.serve.server import ServerThread, build_app

    app, eng = build_app(_cfg(export, served_model_name="tiny", max_new_tokens=LIMIT))
    assert isinstance(eng, LlamaCppEngine), "serve_backend llama.cpp builds the llama.cpp engine"
    with ServerThread(app) as url:
        yield url, eng
    eng.stop()


def _ask(url: str, question: str, **extra: object) -> httpx.Response:
    body = {"model": "tiny", "messages": [{"role": "user", "content": question}], "temperature": 0, **extra}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=120)


def _streamed(url: str, question: str) -> tuple[str, str | None]:
    body = {"model": "tiny", "messages": [{"role": "user", "content": question}], "temperature": 0, "stream": True}
    text, finish = "", None
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                choice = json.loads(line[6:])["choices"][0]
                text += choice["delta"].get("content", "")
                finish = choice["finish_reason"] or finish
    return text, finish


@pytest.fixture(scope="module")
def transformers_server(reference: Loaded, export: Path):  # noqa: ANN201 - the URL
    """The same API over transformers' engine on the reference weights: what llama.cpp's must answer."""
    from tunesmith.serve.engine import Engine
    from tunesmith.serve.server import ServerThread, build_app

    eng = Engine(reference.model, reference.tokenizer, reference.template, reference.stop_ids,
                 base_name="tiny").start()
    app, _ = build_app(_cfg(export, serve_backend="transformers", max_new_tokens=LIMIT), eng)
    with ServerThread(app) as url:
        yield url
    eng.stop()


def test_the_api_answers_through_llama_cpp_as_through_transformers(server: tuple, transformers_server: str) -> None:
    """Non-streaming and streaming answers, finish reasons (stop at <end_of_turn>, length) and usage equal
    the transformers engine's on the same weights."""
    url, _ = server
    answers = {}
    for name, where in (("llama.cpp", url), ("transformers", transformers_server)):
        answers[name] = [(o["choices"][0]["message"]["content"], o["choices"][0]["finish_reason"], o["usage"])
                         for o in (_ask(where, q).json() for q in QUESTIONS)]
        answers[name + " streamed"] = [_streamed(where, q) for q in QUESTIONS[:4]]
    assert answers["llama.cpp"] == answers["transformers"]
    assert answers["llama.cpp streamed"] == answers["transformers streamed"]
    assert [a[:2] for a in answers["llama.cpp"][:4]] == answers["llama.cpp streamed"]
    finishes = {a[1] for a in answers["llama.cpp"]}
    assert finishes == {"stop", "length"}, "some answers end at <end_of_turn>, others at max_tokens"
    assert all(a[2]["completion_tokens"] == LIMIT for a in answers["llama.cpp"] if a[1] == "length")


def test_the_api_refuses_images_and_unknown_models(server: tuple) -> None:
    url, _ = server
    assert [m["id"] for m in httpx.get(url + "/v1/models").json()["data"]] == ["tiny"]
    image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    refused = _ask(url, image)  # type: ignore[arg-type]
    assert refused.status_code == 400 and "reads no images" in refused.json()["error"]["message"]
    assert _ask(url, "Hello", model="other").status_code == 404


def test_a_client_that_leaves_mid_stream_frees_the_engine(server: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """The longest answer, streamed at 20 ms a token and dropped after its first token, stops generating
    (counted in tokens the engine produced); the next request is answered."""
    url, eng = server
    natural = {q: len(eng.generate(_prompt(eng, q), GenerationSettings(max_new_tokens=900)).tokens)
               for q in QUESTIONS}
    longest = max(natural, key=natural.__getitem__)
    assert natural[longest] >= 100, natural
    real_steps = eng.generator.steps

    def slow_steps(prompt: list[int], s: GenerationSettings):  # noqa: ANN202 - time for the client to leave
        for token in real_steps(prompt, s):
            time.sleep(0.02)
            yield token

    monkeypatch.setattr(eng.generator, "steps", slow_steps)
    before = eng.stats.generated_tokens
    body = {"model": "tiny", "messages": [{"role": "user", "content": longest}], "max_tokens": 900,
            "temperature": 0, "stream": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as r:
        for line in r.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                break  # leave after the first token
    follow = _ask(url, "Hello", max_tokens=4)
    assert follow.status_code == 200 and follow.json()["usage"]["completion_tokens"] == 4
    dropped = eng.stats.generated_tokens - before - 4
    assert dropped < 30, f"the dropped stream kept generating ({dropped} of {natural[longest]} tokens)"


def test_chat_command_runs_on_llama_cpp(export: Path, engine: LlamaCppEngine, reference: Loaded) -> None:
    from typer.testing import CliRunner

    from tunesmith.cli.main import app

    result = CliRunner().invoke(app, ["chat", "serve_backend=llama.cpp", "--model", str(export),
                                      "--max-new-tokens", str(LIMIT)], input="Hello\n/exit\n")
    assert result.exit_code == 0, result.output
    expected = "".join(ChatSession(reference, GenerationSettings(max_new_tokens=LIMIT)).send("Hello"))
    assert "backend: llama.cpp (serve_backend: llama.cpp)" in result.output
    assert f"Model: {expected}\n" in result.output and expected


def test_a_gguf_without_template_or_end_of_turn_id_is_served_with_warnings(tiny_gguf_model_dir: Path,
                                                                          tmp_path: Path) -> None:
    """A plain .gguf (no chat template, EOS only): converted once for its tokenizer, served, and told about."""
    from tunesmith.export.gguf import write_gguf

    gguf = write_gguf(tiny_gguf_model_dir, tmp_path / "plain.gguf", "f16", stop_ids=[1])
    warnings: list[str] = []
    eng = load_llama_cpp_engine(_cfg(gguf, cache_dir=str(tmp_path / "cache")), warn=warnings.append)
    try:
        assert len(warnings) == 2
        assert "chat template is missing" in warnings[0] and "end-of-turn ids [5]" in warnings[1]
        assert eng.stop_ids == [5, 1] and len(eng.generate(_prompt(eng, "Hello"), GenerationSettings(4)).tokens) > 0
    finally:
        eng.stop()


def test_an_amx_build_is_refused_before_loading(export: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunesmith.model import llama_cpp

    monkeypatch.setattr(llama_cpp, "amx_int8_build", lambda: True)
    monkeypatch.delenv(llama_cpp.ALLOW_AMX_ENV, raising=False)
    with pytest.raises(ModelLoadError) as err:
        load_llama_cpp_engine(_cfg(export))
    text = str(err.value)
    assert "AMX_INT8 = 1" in text and "segfault" in text and "install_llamacpp.sh" in text
    assert "-DGGML_AMX_INT8=OFF" in text and llama_cpp.ALLOW_AMX_ENV in text
    monkeypatch.setenv(llama_cpp.ALLOW_AMX_ENV, "1")
    eng = load_llama_cpp_engine(_cfg(export))  # this build has no AMX: it runs
    try:
        assert eng.generate(_prompt(eng, "Hello"), GenerationSettings(max_new_tokens=2)).tokens
    finally:
        eng.stop()


def test_bench_generate_puts_the_engine_beside_raw_llama_cpp(export: Path, tmp_path: Path, cli) -> None:  # noqa: ANN001
    out = tmp_path / "generate.json"
    gguf = export / "gguf" / "export-f16.gguf"
    result = cli("bench", "generate", "--model", str(export), "--gguf", str(gguf), "--prompts", "4",
                 "--max-new-tokens", "8", "--batch-size", "2", "--single-prompts", "4", "--output", str(out))
    assert result.code == 0, result.err
    rows = {b["backend"]: b for b in json.loads(out.read_text())["backends"]}
    raw, ours = rows["llama.cpp (export-f16.gguf)"], rows["tunesmith llama.cpp (chat/serve engine)"]
    assert ours["mode"] == raw["mode"] == "single-stream" and ours["prompts"] == 4
    assert ours["same_tokens_as_raw_llama_cpp"] is True and ours["tokens"] == raw["tokens"] > 0
    assert "chat/serve engine" in result.out


def test_stop_ends_a_generation_in_progress(export: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopping the engine (the server shutting down) ends the running generation at its next token and
    frees the model only after the engine thread has left llama.cpp."""
    from tunesmith.serve.engine import GenRequest

    eng = load_llama_cpp_engine(_cfg(export))
    real_steps = eng.generator.steps

    def slow_steps(prompt: list[int], s: GenerationSettings):  # noqa: ANN202
        for token in real_steps(prompt, s):
            time.sleep(0.02)
            yield token

    monkeypatch.setattr(eng.generator, "steps", slow_steps)
    request = eng.submit(GenRequest(_prompt(eng, "history"), GenerationSettings(max_new_tokens=120),
                                    lambda _ids, _finish: None))
    deadline = time.time() + 60
    while not request.tokens and time.time() < deadline:
        time.sleep(0.01)
    eng.stop()
    assert request.finish_reason == "cancelled" and 0 < len(request.tokens) < 60
    assert eng._thread is None, "the engine thread ended, so the model could be freed"
