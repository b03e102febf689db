"""The batching engine: a mixed batch (base and two adapters, different lengths and limits) gives each
request exactly what it would get alone; max_batch_size=1 serves one request at a time."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tunesmith.config import load_config
from tunesmith.inference.load import load_inference_model
from tunesmith.model.generate import GenerationSettings, generate_ids
from tunesmith.serve.engine import BASE, Engine, GenRequest, load_engine


def _cfg(model_dir: Path, **extra: object):  # noqa: ANN202
    return load_config(None, {"model_name_or_path": str(model_dir), "template": "gemma", "dataset": "unused",
                              "bf16": False, **extra})


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, tiny_adapters: dict[str, Path]):  # noqa: ANN201
    eng = load_engine(_cfg(tiny_model_dir, adapters=[f"{n}={p}" for n, p in tiny_adapters.items()],
                           served_model_name="base"))
    yield eng
    eng.stop()


def _submit_all(eng: Engine, jobs: list[tuple[list[int], GenerationSettings, str]]) -> list[GenRequest]:
    done = threading.Semaphore(0)
    requests = [GenRequest(p, s, lambda _ids, finish: finish and done.release(), a) for p, s, a in jobs]
    for r in requests:
        eng.submit(r)
    for _ in requests:
        assert done.acquire(timeout=300)
    return requests


def test_mixed_batch_equals_single_requests(engine: Engine, tiny_model_dir: Path,
                                            tiny_adapters: dict[str, Path]) -> None:
    tok = engine.tokenizer
    jobs = [(tok.encode("Hello world"), GenerationSettings(max_new_tokens=7), BASE),
            (tok.encode("The quick brown fox jumps over"), GenerationSettings(max_new_tokens=4),
             engine.adapter_for("alpha")),
            (tok.encode("数学 语文"), GenerationSettings(max_new_tokens=9), engine.adapter_for("beta"))]
    before = engine.stats.batches
    results = _submit_all(engine, jobs)
    assert engine.stats.batches - before == 1, "three concurrent requests share one batch"
    for (prompt, settings, _), result, adapter in zip(jobs, results, (None, "alpha", "beta")):
        alone = load_inference_model(_cfg(tiny_model_dir, adapter_name_or_path=str(tiny_adapters[adapter])
                                          if adapter else None))
        want = generate_ids(alone.model, [prompt], stop_ids=alone.stop_ids, pad_id=tok.pad_token_id,
                            settings=settings)[0]
        assert result.tokens == want, adapter
        assert result.finish_reason == ("length" if len(want) == settings.max_new_tokens else "stop")


def test_cancelled_request_stops_early(engine: Engine) -> None:
    seen: list[int] = []
    done = threading.Event()

    def emit(ids: list[int], finish: str | None) -> None:
        seen.append(len(ids))
        if len(ids) >= 2:
            request.cancelled = True
        if finish:
            done.set()

    request = GenRequest(engine.tokenizer.encode("Hello"), GenerationSettings(max_new_tokens=50), emit)
    engine.submit(request)
    assert done.wait(300)
    assert request.finish_reason == "cancelled" and len(request.tokens) < 10


def test_batch_size_one_serves_requests_one_at_a_time(engine: Engine) -> None:
    single = Engine(engine.model, engine.tokenizer, engine.template, engine.stop_ids, base_name="base",
                    adapters=engine.adapters, max_batch_size=1).start()
    try:
        tok = engine.tokenizer
        _submit_all(single, [(tok.encode(t), GenerationSettings(max_new_tokens=3), BASE) for t in ("a", "b", "c")])
        assert single.stats.batches == 3 and single.stats.largest_batch == 1
    finally:
        single.stop()


def test_unknown_adapter_paths_are_config_errors(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tunesmith.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="not an adapter folder"):
        load_engine(_cfg(tiny_model_dir, adapters=f"x={tmp_path}"))
    with pytest.raises(ConfigError, match="name=path"):
        _cfg(tiny_model_dir, adapters=["just-a-path"])
