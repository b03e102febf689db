"""Chat with an image (``tunesmith chat --image``): the picture reaches the vision tower with the size
the processor gives it, stays in the conversation, and greedy generation agrees with the model's own
forward on the same inputs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tiny_vlm import draw_image
from tunesmith.data.templates import get_template
from tunesmith.model.generate import GenerationSettings
from tunesmith.model.load import end_token_ids, load_model
from tunesmith.model.vision import load_processor, media_inputs
from tunesmith.serve.chat import ChatSession
from tunesmith.utils.errors import ModelLoadError


def _loaded(model_dir: Path) -> tuple[SimpleNamespace, object]:
    proc = load_processor(str(model_dir))
    template = get_template("auto", "qwen2_vl", proc.tokenizer)
    model = load_model(str(model_dir)).eval()
    return SimpleNamespace(model=model, tokenizer=proc.tokenizer, template=template,
                           stop_ids=end_token_ids(proc.tokenizer, template.stop_words)), proc


def test_chat_with_an_image(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    from tunesmith.data.records import Message
    from tunesmith.data.vision import encode_vision_prompt

    loaded, proc = _loaded(tiny_vlm_dir)
    seen: list[torch.Tensor] = []
    loaded.model.model.visual.register_forward_hook(lambda m, args, kwargs, out: seen.append(kwargs["grid_thw"]),
                                                    with_kwargs=True)
    image = draw_image(tmp_path / "red.png", "red", (56, 56))
    session = ChatSession(loaded, GenerationSettings(max_new_tokens=4), processor=proc, images=[str(image)])
    reply = "".join(session.send("What colour is this?"))
    assert isinstance(reply, str)
    assert len(seen) == 1 and seen[0].tolist() == [[1, 4, 4]]  # 56x56 -> 4x4 patches of 14 px -> 4 tokens
    assert session.history[0].content.startswith("<image>\n")
    "".join(session.send("Are you sure?"))  # the image stays in the conversation
    assert len(seen) == 2

    # Greedy generation's first token is the forward pass's argmax on the same inputs (image included).
    from PIL import Image

    pic = Image.open(image).convert("RGB")
    ids = encode_vision_prompt([Message("user", "<image>\nWhat colour is this?")], None, [pic.size],
                               loaded.template, proc)
    assert ids.count(proc.tokenizer.convert_tokens_to_ids("<|image_pad|>")) == 4
    with torch.no_grad():
        logits = loaded.model(**media_inputs(proc, ids, [pic])).logits[0, -1]
    from tunesmith.model.vision import generate_with_images

    answer = generate_with_images(loaded.model, proc, ids, [pic], stop_ids=[-1],
                                  settings=GenerationSettings(max_new_tokens=1))
    assert answer == [int(logits.argmax())]


def test_an_image_for_a_text_only_model_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tunesmith.model.load import load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    loaded = SimpleNamespace(model=None, tokenizer=tok, template=get_template("gemma", None, tok), stop_ids=[1])
    session = ChatSession(loaded, GenerationSettings(), images=[str(draw_image(tmp_path / "a.png", "red"))])
    with pytest.raises(ModelLoadError, match="--image needs a vision-language model"):
        "".join(session.send("What is it?"))


def test_tunesmith_chat_image_flag(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tunesmith.cli.main import app

    image = draw_image(tmp_path / "blue.png", "blue")
    result = CliRunner().invoke(app, ["chat", "--model", str(tiny_vlm_dir), "--image", str(image),
                                      "--max-new-tokens", "3"], input="What colour is this?\n/exit\n")
    assert result.exit_code == 0, result.output
    assert "Model: " in result.output
    missing = CliRunner().invoke(app, ["chat", "--model", str(tiny_vlm_dir), "--image", str(tmp_path / "no.png")],
                                 input="/exit\n")
    assert missing.exit_code != 0 and "no.png not found" in str(missing.exception)
