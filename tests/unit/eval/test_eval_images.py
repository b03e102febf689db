"""``tunesmith eval`` on an image dataset: the same metrics and files, each answer generated with its
picture (the same answer ``chat --image`` gives), perplexity on the text-only examples."""

from __future__ import annotations

import json
from pathlib import Path

from tiny_vlm import draw_image
from tunesmith.config import load_config
from tunesmith.eval.pipeline import evaluate


def test_eval_on_an_image_test_split(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    from tunesmith.data.records import Message
    from tunesmith.data.templates import get_template
    from tunesmith.data.vision import encode_vision_prompt
    from tunesmith.model.generate import GenerationSettings
    from tunesmith.model.load import end_token_ids, load_model
    from tunesmith.model.vision import generate_with_images, load_processor

    rows = []
    for colour in ("red", "blue"):
        draw_image(tmp_path / "pics" / f"{colour}.png", colour)
        rows.append({"images": [f"{colour}.png"], "messages": [
            {"role": "user", "content": "<image>What colour is this?"}, {"role": "assistant", "content": colour}]})
    rows.append({"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "red"}]})
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(None, {"model_name_or_path": str(tiny_vlm_dir), "dataset": str(tmp_path / "test.jsonl"),
                             "test_dataset": str(tmp_path / "test.jsonl"), "media_dir": str(tmp_path / "pics"),
                             "dataset_dir": str(tmp_path), "max_new_tokens": 4, "bf16": False,
                             "eval_output_dir": str(tmp_path / "eval")})
    cmp, files = evaluate(cfg)
    ev = cmp.evals[0]
    assert [r.get("images") for r in ev.rows] == [[str(tmp_path / "pics" / "red.png")],
                                                   [str(tmp_path / "pics" / "blue.png")], None]
    assert "exact_match" in ev.metrics and ev.metrics["perplexity"] is not None
    written = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert written[0]["images"] == [str(tmp_path / "pics" / "red.png")] and files

    proc = load_processor(str(tiny_vlm_dir))
    template = get_template("auto", "qwen2_vl", proc.tokenizer)
    model = load_model(str(tiny_vlm_dir)).eval()
    pic = Image.open(tmp_path / "pics" / "blue.png").convert("RGB")
    ids = encode_vision_prompt([Message("user", "<image>What colour is this?")], None, [pic.size], template, proc)
    direct = generate_with_images(model, proc, ids, [pic], stop_ids=end_token_ids(proc.tokenizer, template.stop_words),
                                  settings=GenerationSettings(max_new_tokens=4))
    assert ev.rows[1]["prediction"] == proc.tokenizer.decode(direct, skip_special_tokens=True)
