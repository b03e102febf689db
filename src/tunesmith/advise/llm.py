"""Ask a model for text: a local model (base or tuned, through tunesmith's own loading and
generation) or any OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama, tunesmith serve, a
cloud API). Used by ``tunesmith data augment --model``; each backend maps a list of prompts to replies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tunesmith.utils.errors import ModelLoadError

Ask = Callable[[list[str]], list[str]]


def openai_backend(base_url: str, model: str, *, api_key: str | None = None, temperature: float = 0.7,
                   max_tokens: int = 256, timeout: float = 120.0) -> Ask:
    """Chat completions from an OpenAI-compatible server, one request per prompt."""
    from openai import APIConnectionError, APIStatusError, OpenAI

    client = OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout, max_retries=1)

    def ask(prompts: list[str]) -> list[str]:
        replies = []
        for prompt in prompts:
            try:
                resp = client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": prompt}],
                    temperature=temperature, max_tokens=max_tokens,
                )
            except APIConnectionError as exc:
                raise ModelLoadError(
                    f"cannot reach the endpoint {base_url!r}: {exc}",
                    hint="check --endpoint (e.g. http://127.0.0.1:8000/v1) and that the server runs",
                ) from exc
            except APIStatusError as exc:
                raise ModelLoadError(
                    f"the endpoint {base_url!r} refused the request ({exc.status_code}): {exc.message}",
                    hint="check --model and --api-key (or OPENAI_API_KEY)",
                ) from exc
            replies.append(resp.choices[0].message.content or "")
        return replies

    return ask


def local_backend(model: str, *, adapter: str | None = None, template: str = "auto", max_new_tokens: int = 256,
                  temperature: float = 0.0, batch_size: int = 8) -> Ask:
    """Generation with a local model (bundled name, folder or .gguf), optionally with a trained adapter."""
    from tunesmith.config.schema import Config, ModelArgs
    from tunesmith.data.records import Message
    from tunesmith.data.tokenize import encode_prompt
    from tunesmith.inference.load import load_inference_model
    from tunesmith.model.generate import GenerationSettings, generate_ids

    # Only the model group matters for generation (a training config would also demand a dataset).
    cfg = Config(model=ModelArgs(model_name_or_path=model, adapter_name_or_path=adapter, template=template))
    loaded = load_inference_model(cfg)
    tok = loaded.tokenizer
    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature)

    def ask(prompts: list[str]) -> list[str]:
        ids = [encode_prompt([Message("user", p)], None, loaded.template, tok) for p in prompts]
        out: list[Any] = generate_ids(loaded.model, ids, stop_ids=loaded.stop_ids, pad_id=tok.pad_token_id,
                                      settings=settings, batch_size=batch_size)
        return [tok.decode(o, skip_special_tokens=True) for o in out]

    return ask


def backend_id(model: str, endpoint: str | None, adapter: str | None = None) -> str:
    """The model part of the cache key: the same model asked the same prompt reuses its answer."""
    if endpoint:
        return f"openai:{model}"
    return f"local:{model}" + (f"+{adapter}" if adapter else "")
