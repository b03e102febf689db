"""Images and video in the data: both shapes, paths, and every check before training (data/media.py,
data/vision.py), measured with a tiny Qwen2-VL's processor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tiny_vlm import draw_image
from tunesmith.data.media import check_media, resolve_media
from tunesmith.data.records import SFTExample
from tunesmith.data.registry import load_examples
from tunesmith.utils.errors import DataFormatError


def _qwen_finetune_data(root: Path) -> Path:
    """Qwen2-VL-Finetune's shape: image (one or a list), <image> placeholders, files under an image folder."""
    pics = root / "pics"
    draw_image(pics / "red.png", "red")
    draw_image(pics / "blue.png", "blue", (84, 56))
    rows = [
        {"id": "a", "image": "red.png",
         "conversations": [{"from": "human", "value": "<image>\nWhat colour is this?"},
                           {"from": "gpt", "value": "red"}]},
        {"id": "b", "image": ["red.png", "blue.png"],
         "conversations": [{"from": "human", "value": "<image>\n<image>\nIs the perspective different?"},
                           {"from": "gpt", "value": "no"}]},
    ]
    (root / "train.json").write_text(json.dumps(rows))
    return pics


def test_qwen2_vl_finetune_shape_with_image_folder(tmp_path: Path) -> None:
    pics = _qwen_finetune_data(tmp_path)
    examples = resolve_media(load_examples(str(tmp_path / "train.json"), tmp_path), pics)
    assert [e.images for e in examples] == [[str(pics / "red.png")], [str(pics / "red.png"), str(pics / "blue.png")]]
    check_media(examples)  # no problem


def test_llamafactory_shape_with_columns_relative_to_the_dataset_file(tmp_path: Path) -> None:
    draw_image(tmp_path / "mllm" / "1.png", "green")
    rows = [{"messages": [{"role": "user", "content": "<image>Who is this?"},
                          {"role": "assistant", "content": "green"}], "pics": ["1.png"]}]
    (tmp_path / "mllm" / "demo.json").write_text(json.dumps(rows))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"mllm_demo": {
        "file_name": "mllm/demo.json", "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "pics"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}}))
    examples = resolve_media(load_examples("mllm_demo", tmp_path))
    assert examples[0].images == [str(tmp_path / "mllm" / "1.png")]
    assert examples[0].messages[0].content == "<image>Who is this?"


def _one(tmp_path: Path, images: list[str], text: str, videos: list[str] | None = None) -> list[SFTExample]:
    rows = [{"images": images, **({"videos": videos} if videos else {}),
             "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "red"}]}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return resolve_media(load_examples(str(tmp_path / "d.jsonl"), tmp_path))


def test_missing_image_names_the_file_and_record(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError) as exc:
        check_media(_one(tmp_path, ["nope.png"], "<image>What colour?"), name="training data")
    assert f"{tmp_path / 'd.jsonl'}:1: image {tmp_path / 'nope.png'} not found" in str(exc.value)


def test_unreadable_image(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(DataFormatError, match=r"d\.jsonl:1: image .*broken\.png cannot be read as an image"):
        check_media(_one(tmp_path, ["broken.png"], "<image>What colour?"))


@pytest.mark.parametrize(("text", "fix"), [("What colour?", "add 1 <image>"),
                                           ("<image><image>What colour?", "remove 1 <image>")])
def test_placeholder_count_must_match_media_count(tmp_path: Path, text: str, fix: str) -> None:
    draw_image(tmp_path / "red.png", "red")
    with pytest.raises(DataFormatError) as exc:
        check_media(_one(tmp_path, ["red.png"], text))
    assert "d.jsonl:1:" in str(exc.value) and "placeholder(s) but 1 image file(s)" in str(exc.value)
    assert fix in str(exc.value)


def test_missing_video_and_video_placeholders(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError) as exc:
        check_media(_one(tmp_path, [], "What happens?", videos=["clip.mp4"]))
    msg = str(exc.value)
    assert "0 <video> placeholder(s) but 1 video file(s)" in msg and f"video {tmp_path / 'clip.mp4'} not found" in msg


def test_media_field_of_the_wrong_type(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text(json.dumps({"image": 3, "conversations": [
        {"from": "human", "value": "<image>?"}, {"from": "gpt", "value": "x"}]}) + "\n")
    with pytest.raises(DataFormatError, match=r"d\.jsonl:1: field 'image' must be a path or a list of paths"):
        load_examples(str(tmp_path / "d.jsonl"), tmp_path)


def test_vision_tokens_follow_the_pixel_limits_and_cutoff_len_says_the_length_needed(
        tmp_path: Path, tiny_vlm_dir: Path) -> None:
    from tunesmith.config.schema import DataArgs
    from tunesmith.data.templates import get_template
    from tunesmith.data.vision import cutoff_problem, encode_vision_sft
    from tunesmith.model.vision import load_processor

    draw_image(tmp_path / "red.png", "red", (112, 112))  # 16 patches of 28x28 at the model's own limits
    example = _one(tmp_path, ["red.png"], "<image>What colour?")[0]
    proc = load_processor(str(tiny_vlm_dir))
    template = get_template("auto", "qwen2_vl", proc.tokenizer)
    enc = encode_vision_sft(example, template, proc)
    assert enc.image_tokens == [16]
    image_id = proc.tokenizer.convert_tokens_to_ids(proc.image_token)
    assert enc.encoded.input_ids.count(image_id) == 16
    assert all(lab == -100 for i, lab in zip(enc.encoded.input_ids, enc.encoded.labels, strict=True) if i == image_id)
    # The answer and the end-of-turn token carry the loss, nothing else does.
    trained = [i for i, lab in zip(enc.encoded.input_ids, enc.encoded.labels, strict=True) if lab != -100]
    assert proc.tokenizer.decode(trained) == "red<|im_end|>\n" or proc.tokenizer.decode(trained) == "red<|im_end|>"

    small = load_processor(str(tiny_vlm_dir), DataArgs(image_max_pixels=28 * 28 * 4))
    assert encode_vision_sft(example, template, small).image_tokens == [4]
    # Together with the other processor call the processor makes itself (pixels -> grid), the same count:
    from PIL import Image

    grid = small.process_images([Image.open(tmp_path / "red.png")])["image_grid_thw"][0]
    assert int(grid.prod()) // 4 == 4

    problem = cutoff_problem(enc, 20)
    assert problem is not None and f"needs {enc.full_length} tokens (16 of them vision tokens" in problem
    assert cutoff_problem(enc, enc.full_length) is None


def test_data_check_reports_media_and_vision_tokens(tmp_path: Path, tiny_vlm_dir: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from tunesmith.cli.main import app

    pics = _qwen_finetune_data(tmp_path)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["data", "check", str(tmp_path / "train.json"), "--model", str(tiny_vlm_dir),
                                      "--media-dir", str(pics), "--json", str(out)])
    assert result.exit_code == 0, result.output
    split = json.loads(out.read_text())["splits"][0]
    # red 56x56 = 4 tokens; blue 84x56 = 6 tokens
    assert split["media"] == {"records_with_media": 2, "images": 3, "videos": 0, "vision_tokens": 14}
    assert "vision tokens" in result.output

    # Through the real entry point: one located error block, exit 2.
    import sys

    from tunesmith.cli import main as cli_main
    from tunesmith.utils.console import err_console

    monkeypatch.setattr(sys, "argv", ["tunesmith", "data", "check", str(tmp_path / "train.json"), "--model",
                                      str(tiny_vlm_dir), "--media-dir", str(pics), "--cutoff-len", "30"])
    monkeypatch.setattr(err_console, "width", 1000)
    with pytest.raises(SystemExit) as exc:
        cli_main.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert f"{tmp_path / 'train.json'}:1: needs " in err and "cutoff_len=30 would cut vision tokens" in err
    assert "set cutoff_len to at least" in err


def test_video_tokens_are_expanded_from_the_video_processors_grid(tmp_path: Path, tiny_vlm_dir: Path) -> None:
    """transformers' video processors need torchvision (absent here), so a stand-in returns the grid a
    4-frame 56x56 clip gets (2 temporal x 4 x 4 patches -> 8 tokens); tunesmith's part is the expansion."""
    import dataclasses

    import torch

    from tunesmith.data.templates import get_template
    from tunesmith.data.vision import encode_vision_sft
    from tunesmith.model.vision import load_processor

    (tmp_path / "clip.mp4").write_bytes(b"not decoded by the stand-in")
    example = _one(tmp_path, [], "<video>What happens?", videos=["clip.mp4"])[0]
    check_media([example])
    proc = load_processor(str(tiny_vlm_dir))
    calls: list[list[str]] = []

    def grid(paths: list[str]) -> dict:
        calls.append(paths)
        return {"video_grid_thw": torch.tensor([[2, 4, 4]])}

    stand_in = dataclasses.replace(proc)
    object.__setattr__(stand_in, "process_videos", grid)
    enc = encode_vision_sft(example, get_template("auto", "qwen2_vl", proc.tokenizer), stand_in)
    assert calls == [[str(tmp_path / "clip.mp4")]] and enc.video_tokens == [8]
    assert enc.encoded.input_ids.count(proc.tokenizer.convert_tokens_to_ids("<|video_pad|>")) == 8
    from tunesmith.utils.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="video processor, which needs torchvision"):
        encode_vision_sft(example, get_template("auto", "qwen2_vl", proc.tokenizer), proc)
