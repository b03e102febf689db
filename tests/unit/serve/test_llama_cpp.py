"""llama.cpp backend: a GGUF's chat template and stop ids are checked; llama.cpp's greedy tokens are transformers'."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunesmith.export.gguf import gguf_tokenizer_extras, write_gguf
from tunesmith.model import llama_cpp
from tunesmith.model.generate import GenerationSettings, generate_ids
from tunesmith.serve.llama_cpp import gguf_chat_problems


@pytest.fixture(scope="module")
def tiny_gguf(tiny_gguf_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model as 'tunesmith export' writes it: the training template in its tokenizer."""
    import shutil

    from transformers import AutoTokenizer

    from tunesmith.data.templates import get_template, to_jinja

    root = tmp_path_factory.mktemp("llama")
    shutil.copytree(tiny_gguf_model_dir, root / "model")
    tok = AutoTokenizer.from_pretrained(root / "model")
    tok.chat_template = to_jinja(get_template("gemma"))
    tok.save_pretrained(root / "model")
    return write_gguf(root / "model", root / "m.gguf", "f16", stop_ids=[1, 5])


def test_the_chat_template_and_every_end_of_turn_id_must_be_in_the_file(tiny_gguf: Path) -> None:
    template, _, stops = gguf_tokenizer_extras(tiny_gguf)
    assert template and set(stops) == {1, 5}
    assert gguf_chat_problems(tiny_gguf, template, [1, 5]) == []
    (problem,) = gguf_chat_problems(tiny_gguf, template + " ", [1, 5])
    assert "differs from the training template" in problem
    (problem,) = gguf_chat_problems(tiny_gguf, template, [1, 5, 7])
    assert "[7]" in problem


@pytest.mark.skipif(not llama_cpp.available(), reason="llama-cpp-python is not installed (optional)")
def test_llama_cpp_greedy_tokens_equal_transformers(tiny_gguf_model_dir: Path, tiny_gguf: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_gguf_model_dir, dtype=torch.float32).eval()
    prompts = [[2, 9, 17, 33, 40], [2, 11, 12]]
    settings = GenerationSettings(max_new_tokens=8)
    want = generate_ids(model, prompts, stop_ids=[1, 5], pad_id=0, settings=settings, batch_size=1)
    got = llama_cpp.LlamaCppGenerator(tiny_gguf, n_ctx=256).generate_ids(prompts, stop_ids=[1, 5], settings=settings)
    assert got == want
