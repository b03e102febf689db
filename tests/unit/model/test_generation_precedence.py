"""One precedence for generation settings: eval, chat, the API's defaults, the web chat tab and the
post-training comparison all get override > config key the user set > the model's generation_config >
tunesmith's default, from one function."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tunesmith.config import load_config
from tunesmith.model.generate import GenerationSettings, generation_settings


@pytest.fixture
def model() -> SimpleNamespace:
    from transformers import GenerationConfig

    # what an export writes: the user's sampling defaults in generation_config.json
    return SimpleNamespace(generation_config=GenerationConfig(do_sample=True, temperature=0.7, top_p=0.9, top_k=40))


def test_eval_chat_and_api_defaults_agree(model: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunesmith.eval.generation import generation_settings as eval_settings
    from tunesmith.serve.server import defaults_from

    cfg = load_config(None, {"max_new_tokens": 12, "top_k": 5}, require_data=False)
    want = GenerationSettings(max_new_tokens=12, temperature=0.7, top_p=0.9, top_k=5, repetition_penalty=1.0)
    assert eval_settings(cfg, model)[0] == want
    assert defaults_from(cfg, model) == want

    # `tunesmith chat`: flags are config keys, the rest comes from the model it loaded
    from typer.testing import CliRunner

    import tunesmith.inference.load as inference
    import tunesmith.serve.chat as serve_chat
    from tunesmith.cli.main import app

    seen: list[GenerationSettings] = []
    monkeypatch.setattr(inference, "load_inference_model", lambda _cfg: SimpleNamespace(
        model=model, adapter_path=None, template=SimpleNamespace(name="gemma")))
    monkeypatch.setattr(serve_chat, "ChatSession", lambda loaded, settings, *a, **k: seen.append(settings))
    monkeypatch.setattr(serve_chat, "run_chat", lambda *a: None)
    result = CliRunner().invoke(app, ["chat", "max_new_tokens=12", "--top-k", "5"])
    assert result.exit_code == 0, result.output
    assert seen == [want]


def test_overrides_win_and_unset_keys_fall_back(model: SimpleNamespace) -> None:
    # the web chat tab's form and the post-training comparison pass their own values as overrides
    form, source = generation_settings(None, model, max_new_tokens=20, temperature=0.0, top_p=1.0)
    assert (form.max_new_tokens, form.temperature, form.top_k) == (20, 0.0, 40), "top_k is the model's, not 0"
    assert source["temperature"] == "override" and source["top_k"] == "model"
    bare, source = generation_settings(None, None)
    assert bare == GenerationSettings() and set(source.values()) == {"default"}
