"""One generation loop: batched answers (eval), streamed chat and the API's engine give the same tokens
for the same prompt and settings, greedy and seeded sampling alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.config import load_config
from tunesmith.inference.load import load_inference_model
from tunesmith.model.generate import GenerationSettings, generate_ids, stream_ids
from tunesmith.serve.engine import Engine


@pytest.mark.parametrize("settings", [GenerationSettings(max_new_tokens=10),
                                      GenerationSettings(max_new_tokens=10, temperature=1.5, top_k=20, seed=3)])
def test_eval_chat_and_engine_agree(settings: GenerationSettings, tiny_model_dir: Path) -> None:
    loaded = load_inference_model(load_config(None, {"model_name_or_path": str(tiny_model_dir), "template": "gemma",
                                                     "bf16": False}, require_data=False))
    tok = loaded.tokenizer
    prompt = tok.encode("The quick brown fox")
    batched = generate_ids(loaded.model, [prompt], stop_ids=loaded.stop_ids, pad_id=tok.pad_token_id,
                           settings=settings)[0]
    streamed = list(stream_ids(loaded.model, prompt, stop_ids=loaded.stop_ids, pad_id=tok.pad_token_id,
                               settings=settings))[-1]
    engine = Engine(loaded.model, tok, loaded.template, loaded.stop_ids, base_name="base").start()
    try:
        served = engine.generate(prompt, settings).tokens
    finally:
        engine.stop()
    assert batched == streamed == served, (batched, streamed, served)
    assert len(batched) > 0
