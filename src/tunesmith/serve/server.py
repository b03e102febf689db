"""Run the API: build the engine from a config and serve it with uvicorn (or vLLM on a GPU; llama.cpp on a GGUF).

``ServerThread`` runs the same app in a background thread on a free local port; tests and the
throughput benchmark use it and shut it down when done.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from tunesmith.config.schema import Config
from tunesmith.model.generate import GenerationSettings, generation_settings
from tunesmith.serve.api import Service, create_app
from tunesmith.serve.engine import load_engine


def defaults_from(cfg: Config, model: Any = None) -> GenerationSettings:
    """A request's defaults: the config's keys, else the model's generation_config, else greedy."""
    return generation_settings(cfg, model)[0]


def load_serving_engine(cfg: Config) -> Any:
    """The engine ``serve_backend`` chooses: llama.cpp's (serve/llama_cpp.py) or transformers' (serve/engine.py)."""
    from tunesmith.serve.backend import choose_backend

    if choose_backend(cfg)[0] == "llama.cpp":
        from tunesmith.serve.llama_cpp import load_llama_cpp_engine

        return load_llama_cpp_engine(cfg)
    return load_engine(cfg)


def build_app(cfg: Config, engine: Any = None) -> tuple[Any, Any]:
    """The FastAPI app for a config (loading the engine ``serve_backend`` chooses unless one is given)."""
    engine = engine or load_serving_engine(cfg)
    service = Service(engine, defaults=defaults_from(cfg, engine.model), api_key=cfg.serve.api_key,
                      max_body_bytes=cfg.serve.max_request_kb * 1024)
    return create_app(service), engine


def use_vllm(cfg: Config) -> bool:
    """vLLM serves when asked for, or on auto when it is installed and a CUDA GPU is present."""
    from tunesmith.serve.backend import choose_backend

    return choose_backend(cfg)[0] == "vllm"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ServerThread:
    """uvicorn in a background thread: ``with ServerThread(app) as url: ...``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None) -> None:
        import uvicorn

        self.host, self.port = host, port or free_port(host)
        self.server = uvicorn.Server(uvicorn.Config(app, host=self.host, port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        return self.url

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
