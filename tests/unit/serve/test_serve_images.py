"""The API with a vision-language model: OpenAI ``image_url`` parts (data: URLs; local paths only under the
server's media folder), answered through the engine exactly as ``tunesmith chat --image`` answers."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from tiny_vlm import draw_image
from tunesmith.config import load_config
from tunesmith.serve.server import ServerThread, build_app


@pytest.fixture(scope="module")
def vlm_server(tiny_vlm_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - (url, engine, dir)
    media = tmp_path_factory.mktemp("served-media")
    draw_image(media / "red.png", "red")
    cfg = load_config(None, {"model_name_or_path": str(tiny_vlm_dir), "dataset": "unused", "bf16": False,
                             "max_new_tokens": 6, "media_dir": str(media), "served_model_name": "x"})
    app, engine = build_app(cfg)
    with ServerThread(app) as url:
        yield url, engine, media
    engine.stop()


def _data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _ask(url: str, image_url: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", timeout=60, json={"model": "x", "messages": [{
        "role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}},
                                    {"type": "text", "text": "What colour is this?"}]}]})


def test_image_url_data_url_reaches_the_vision_tower(vlm_server, tmp_path: Path) -> None:  # noqa: ANN001
    from PIL import Image

    from tunesmith.data.records import Message
    from tunesmith.data.vision import encode_vision_prompt
    from tunesmith.model.generate import GenerationSettings
    from tunesmith.model.vision import generate_with_images

    url, engine, _ = vlm_server
    grids = []
    hook = engine.model.model.visual.register_forward_hook(
        lambda m, a, kw, out: grids.append(kw["grid_thw"].tolist()), with_kwargs=True)
    try:
        image = draw_image(tmp_path / "blue.png", "blue", (84, 56))
        resp = _ask(url, _data_url(image))
    finally:
        hook.remove()
    assert resp.status_code == 200, resp.text
    assert grids == [[[1, 4, 6]]]  # 84x56 px -> 4x6 patches of 14 px -> 6 vision tokens
    body = resp.json()
    assert body["usage"]["prompt_tokens"] > 6
    # The same answer as generating directly from the same prompt and picture (greedy).
    pic = Image.open(image).convert("RGB")
    ids = encode_vision_prompt([Message("user", "<image>What colour is this?")], None, [pic.size],
                               engine.template, engine.processor)
    direct = generate_with_images(engine.model, engine.processor, ids, [pic], stop_ids=engine.stop_ids,
                                  settings=GenerationSettings(max_new_tokens=6))
    assert body["choices"][0]["message"]["content"] == engine.tokenizer.decode(direct, skip_special_tokens=True)


def test_local_paths_only_inside_the_media_folder(vlm_server, tmp_path: Path) -> None:  # noqa: ANN001
    url, _, media = vlm_server
    assert _ask(url, "red.png").status_code == 200
    assert _ask(url, f"file://{media / 'red.png'}").status_code == 200
    outside = draw_image(tmp_path / "elsewhere.png", "green")
    resp = _ask(url, str(outside))
    assert resp.status_code == 400 and "outside the server's media folder" in resp.text
    resp = _ask(url, "../" + media.name + "/../etc.png")
    assert resp.status_code == 400


@pytest.mark.parametrize(("image_url", "said"), [
    ("https://example.com/a.png", "does not fetch URLs"),
    ("data:image/png;base64,@@@", "not valid base64"),
    ("data:image/png;base64," + base64.b64encode(b"not an image").decode(), "not a readable image"),
])
def test_bad_image_parts_are_400(vlm_server, image_url: str, said: str) -> None:  # noqa: ANN001
    resp = _ask(vlm_server[0], image_url)
    assert resp.status_code == 400 and said in resp.text and "messages[0].content[0]" in resp.text


def test_text_only_models_and_servers_without_a_media_folder_refuse_images(tmp_path: Path) -> None:
    from tunesmith.serve.api import ApiError, ChatMessage, chat_messages

    part = {"type": "image_url", "image_url": {"url": "pic.png"}}
    with pytest.raises(ApiError, match="reads no images"):
        chat_messages([ChatMessage(role="user", content=[part])])  # a text-only model collects no images
    with pytest.raises(ApiError, match="only when the server is started with a media folder"):
        chat_messages([ChatMessage(role="user", content=[part])], images=[], media_dir=None)
