"""An OpenAI-compatible HTTP API over the engine (FastAPI): models, chat completions, completions.

``/v1/models``, ``/v1/chat/completions`` (with ``stream: true`` as server-sent events, and without)
and ``/v1/completions``. The request's ``model`` picks the base model or one of the adapters. Errors
come back in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with a 4xx status:
unknown model (404), bad values or malformed messages (400), missing or wrong API key (401),
oversized bodies (413, also when sent chunked without a Content-Length: reading stops at the limit).
Limits on ``max_tokens``, ``n``, ``stop`` and the number and size of ``messages`` answer 400 naming
the parameter. The API key is compared in constant time; ``/health`` says only that the server is up.
Chat prompts are rendered with the training template, so a served adapter
sees exactly the token layout it was trained on.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tunesmith.data.media import IMAGE_PLACEHOLDER
from tunesmith.data.records import Message
from tunesmith.data.tokenize import encode_prompt
from tunesmith.model.generate import GenerationSettings
from tunesmith.serve.detok import IncrementalText
from tunesmith.serve.engine import Engine, GenRequest
from tunesmith.serve.media import MAX_IMAGES, ImagePartError, is_image_part, load_image_part

# Request limits (each a 400 naming the parameter): generated tokens, chat messages and their size,
# stop sequences (OpenAI allows 4).
MAX_TOKENS, MAX_MESSAGES, MAX_MESSAGE_CHARS, MAX_STOP = 4096, 256, 100_000, 4


class ApiError(Exception):
    """An error returned to the client in OpenAI's shape."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    repetition_penalty: float | None = Field(None, gt=0.0)
    n: int = 1
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    stop: str | list[str] | None = None
    seed: int | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(_Request):
    messages: list[ChatMessage]


class CompletionRequest(_Request):
    prompt: str | list[str]


def _text_of(content: str | list[dict[str, Any]] | None, where: str, images: list[Any] | None = None,
             media_dir: str | None = None) -> str:
    """A message's text; with ``images`` (a vision model), image_url parts become <image> placeholders and
    their pictures are appended to ``images``."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for j, part in enumerate(content):
        if images is not None and is_image_part(part):
            try:
                images.append(load_image_part(part, f"{where}.content[{j}]", media_dir))
            except ImagePartError as exc:
                raise ApiError(400, str(exc), param="messages") from None
            if len(images) > MAX_IMAGES:
                raise ApiError(400, f"at most {MAX_IMAGES} images per request", param="messages")
            parts.append(IMAGE_PLACEHOLDER)
            continue
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            kind = "text and image_url" if images is not None else "text (this model reads no images)"
            raise ApiError(400, f"{where}: only {kind} content parts are supported", param="messages")
        parts.append(part["text"])
    return "".join(parts)


def chat_messages(messages: list[ChatMessage], images: list[Any] | None = None, media_dir: str | None = None,
                  ) -> tuple[list[Message], str | None]:
    """OpenAI messages -> (alternating user/assistant turns, system prompt); 400 when malformed. With
    ``images`` (a vision model) the request's pictures are collected there, in order."""
    if not messages:
        raise ApiError(400, "'messages' must hold at least one message", param="messages")
    system_parts: list[str] = []
    turns: list[Message] = []
    for i, m in enumerate(messages):
        text = _text_of(m.content, f"messages[{i}]", images, media_dir)
        if m.role in ("system", "developer"):
            if turns:
                raise ApiError(400, f"messages[{i}]: a system message must come before the conversation",
                               param="messages")
            system_parts.append(text)
            continue
        role = "assistant" if m.role == "assistant" else "user"
        if turns and turns[-1].role == role:
            turns[-1] = Message(role, turns[-1].content + "\n\n" + text)  # merge consecutive turns of one role
        else:
            turns.append(Message(role, text))
    if not turns or turns[0].role != "user":
        raise ApiError(400, "the conversation must start with a user message", param="messages")
    if turns[-1].role != "user":
        raise ApiError(400, "the last message must be from the user", param="messages")
    return turns, ("\n\n".join(system_parts) or None)


class Service:
    """What the endpoints share: the engine, defaults, auth and limits."""

    def __init__(self, engine: Engine, *, defaults: GenerationSettings, api_key: str | None = None,
                 max_body_bytes: int = 512 * 1024, max_tokens_limit: int = MAX_TOKENS,
                 max_messages: int = MAX_MESSAGES, max_message_chars: int = MAX_MESSAGE_CHARS) -> None:
        self.engine = engine
        self.defaults = defaults
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.max_tokens_limit = max_tokens_limit
        self.max_messages = max_messages
        self.max_message_chars = max_message_chars

    def authorize(self, header: str | None) -> None:
        if not self.api_key:
            return
        scheme, _, token = (header or "").partition(" ")
        # Constant time, on bytes: compare_digest refuses a str key with non-ASCII characters (a 500).
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
            raise ApiError(401, "invalid or missing API key: send 'Authorization: Bearer <key>'",
                           type="authentication_error", code="invalid_api_key")

    def settings(self, req: _Request) -> GenerationSettings:
        d = self.defaults
        max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        if max_tokens is not None and max_tokens < 1:
            raise ApiError(400, f"max_tokens must be at least 1 (got {max_tokens})", param="max_tokens")
        if max_tokens is not None and max_tokens > self.max_tokens_limit:
            raise ApiError(400, f"max_tokens must be at most {self.max_tokens_limit} (got {max_tokens})",
                           param="max_tokens")
        if req.n != 1:
            raise ApiError(400, "only n=1 is supported", param="n")
        if len(_stops(req.stop)) > MAX_STOP:
            raise ApiError(400, f"at most {MAX_STOP} stop sequences (got {len(_stops(req.stop))})", param="stop")
        return GenerationSettings(
            max_new_tokens=max_tokens or d.max_new_tokens,
            temperature=d.temperature if req.temperature is None else req.temperature,
            top_p=d.top_p if req.top_p is None else req.top_p,
            top_k=d.top_k if req.top_k is None else req.top_k,
            repetition_penalty=d.repetition_penalty if req.repetition_penalty is None else req.repetition_penalty,
            seed=req.seed,
        )

    def check_messages(self, messages: list[ChatMessage]) -> None:
        """How many messages, and how long each may be (400 naming the first one over)."""
        if len(messages) > self.max_messages:
            raise ApiError(400, f"at most {self.max_messages} messages per request (got {len(messages)})",
                           param="messages")
        for i, m in enumerate(messages):
            size = len(m.content) if isinstance(m.content, str) else sum(
                len(str(p.get("text", ""))) for p in m.content or [])
            if size > self.max_message_chars:
                raise ApiError(400, f"messages[{i}] has {size} characters; the limit is {self.max_message_chars}",
                               param=f"messages[{i}].content")

    def adapter(self, model: str) -> str:
        adapter = self.engine.adapter_for(model)
        if adapter is None:
            raise ApiError(404, f"the model {model!r} does not exist; available: "
                           f"{', '.join(self.engine.model_names)}", param="model", code="model_not_found")
        return adapter


async def read_bounded(request: Request, limit: int) -> bytes:
    """The body, read chunk by chunk and refused as soon as it passes ``limit`` (a chunked body has no
    Content-Length to check first, and must not be held whole in memory before the check)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is over {limit} bytes, the limit", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


class _Run:
    """One request in flight: bridges the engine thread's emit() into asyncio, applies stop strings."""

    def __init__(self, service: Service, prompt: list[int], settings: GenerationSettings, adapter: str,
                 stop: list[str], media: dict[str, Any] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[list[int], str | None]] = asyncio.Queue()
        self.tokenizer = service.engine.tokenizer
        self.stop = stop
        self.prompt_tokens = len(prompt)
        self.completion_tokens = 0
        self.request = service.engine.submit(GenRequest(prompt, settings, self._emit, adapter, media=media))

    def _emit(self, ids: list[int], finish: str | None) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (ids, finish))

    def _cut(self, text: str) -> tuple[str, bool]:
        hits = [text.find(s) for s in self.stop if s and s in text]
        return (text[: min(hits)], True) if hits else (text, False)

    async def pieces(self) -> AsyncIterator[tuple[str, str | None]]:
        """Yield (new text, finish_reason or None) until the request ends."""
        shown = ""
        stream = IncrementalText(self.tokenizer)  # text once sent is never re-spelled (serve/detok.py)
        try:
            while True:
                ids, finish = await self.queue.get()
                self.completion_tokens = len(ids)
                stream.add(ids, final=finish is not None)
                text, stopped = self._cut(stream.text)
                if stopped:
                    self.request.cancelled = True
                    finish = "stop"
                new = text[len(shown):]
                shown = text
                if new or finish is not None:
                    yield new, _finish_reason(finish)
                if finish is not None:
                    return
        finally:
            self.request.cancelled = True  # the client left, or we are done: free the batch row

    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


def _finish_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    if reason.startswith("error"):
        raise ApiError(500, f"generation failed: {reason}", type="server_error")
    return "length" if reason == "length" else "stop"


def _stops(stop: str | list[str] | None) -> list[str]:
    return [stop] if isinstance(stop, str) else list(stop or [])


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def create_app(service: Service) -> FastAPI:
    """The FastAPI application."""
    app = FastAPI(title="tunesmith", description="OpenAI-compatible API served by tunesmith")
    engine = service.engine

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    async def read(request: Request, model: type[BaseModel]) -> Any:
        service.authorize(request.headers.get("authorization"))
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > service.max_body_bytes:
            raise ApiError(413, f"request body is {size} bytes; the limit is {service.max_body_bytes}")
        body = await read_bounded(request, service.max_body_bytes)
        try:
            data = json.loads(body or b"null")
        except json.JSONDecodeError as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object")
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            param = ".".join(str(x) for x in err["loc"])
            raise ApiError(400, f"'{param}': {err['msg']}", param=param) from exc

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok"}  # no key needed, so nothing about models, adapters or load

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        service.authorize(request.headers.get("authorization"))
        return {"object": "list", "data": [_model_card(name, engine) for name in engine.model_names]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str, request: Request) -> dict[str, Any]:
        service.authorize(request.headers.get("authorization"))
        service.adapter(name)
        return _model_card(name, engine)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        req: ChatRequest = await read(request, ChatRequest)
        service.check_messages(req.messages)
        adapter, settings = service.adapter(req.model), service.settings(req)
        images: list[Any] | None = [] if engine.processor is not None else None
        turns, system = chat_messages(req.messages, images, engine.media_dir)
        prompt, media = encode_prompt(turns, system, engine.template, engine.tokenizer), None
        if images:
            prompt, media = vision_request(engine, turns, system, images)
        run = _Run(service, prompt, settings, adapter, _stops(req.stop), media)
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": req.model}
        if req.stream:
            include_usage = bool((req.stream_options or {}).get("include_usage"))
            return StreamingResponse(_chat_stream(run, meta, include_usage), media_type="text/event-stream")
        text, finish = await _collect(run)
        return {**meta, "object": "chat.completion", "usage": run.usage(), "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}]}

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        req: CompletionRequest = await read(request, CompletionRequest)
        adapter, settings = service.adapter(req.model), service.settings(req)
        if isinstance(req.prompt, list):
            if len(req.prompt) != 1:
                raise ApiError(400, "'prompt': send one prompt per request", param="prompt")
            req.prompt = req.prompt[0]
        prompt = engine.tokenizer.encode(req.prompt)
        run = _Run(service, prompt, settings, adapter, _stops(req.stop))
        meta = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": req.model}
        if req.stream:
            return StreamingResponse(_completion_stream(run, meta), media_type="text/event-stream")
        text, finish = await _collect(run)
        return {**meta, "object": "text_completion", "usage": run.usage(), "choices": [
            {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]}

    return app


def vision_request(engine: Engine, turns: list[Message], system: str | None, images: list[Any],
                   ) -> tuple[list[int], dict[str, Any]]:
    """Prompt ids with the images' vision tokens, and the pixel inputs that go with them."""
    from tunesmith.data.vision import encode_vision_prompt
    from tunesmith.model.vision import media_inputs
    from tunesmith.utils.errors import DataFormatError

    try:
        prompt = encode_vision_prompt(turns, system, [im.size for im in images], engine.template,
                                      engine.processor)
    except DataFormatError as exc:  # e.g. a literal <image> typed into the text
        raise ApiError(400, exc.message, param="messages") from None
    inputs = media_inputs(engine.processor, prompt, images)
    return prompt, {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}


def _model_card(name: str, engine: Engine) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": engine.created, "owned_by": "tunesmith",
            "parent": None if name == engine.base_name else engine.base_name}


async def _collect(run: _Run) -> tuple[str, str | None]:
    text, finish = "", None
    async for piece, reason in run.pieces():
        text += piece
        finish = reason or finish
    return text, finish


async def _chat_stream(run: _Run, meta: dict[str, Any], include_usage: bool) -> AsyncIterator[str]:
    base = {**meta, "object": "chat.completion.chunk"}
    yield _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                      "finish_reason": None}]})
    async for piece, finish in run.pieces():
        if piece:
            yield _sse({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        if finish:
            yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if include_usage:
        yield _sse({**base, "choices": [], "usage": run.usage()})
    yield "data: [DONE]\n\n"


async def _completion_stream(run: _Run, meta: dict[str, Any]) -> AsyncIterator[str]:
    base = {**meta, "object": "text_completion"}
    async for piece, finish in run.pieces():
        yield _sse({**base, "choices": [{"index": 0, "text": piece, "logprobs": None, "finish_reason": finish}]})
    yield "data: [DONE]\n\n"
