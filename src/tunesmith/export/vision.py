"""Exporting a vision-language model: the processor files beside the merged weights, and a parity check
with an image prompt (the text-prompt checks never send pixels through the vision tower or the merger,
so a merge that broke either would pass them).

The reference is recorded on base + adapter before the merge; the merged folder is then loaded as a
user loads it (``AutoModelForImageTextToText`` and the processor files written beside it) and must
give the same greedy answer and logits within the merge tolerance on the same picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.data.records import Message
from tunesmith.data.vision import encode_vision_prompt
from tunesmith.export.checks import ArtifactReport
from tunesmith.model.vision import VisionProcessor, generate_with_images, load_processor, media_inputs, save_processor

CHECK_QUESTION = "<image>\nDescribe the picture."


def check_image() -> Any:
    """A fixed picture: colour bands and a dark disc, 112x84 pixels (a few dozen vision tokens)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (112, 84), (240, 240, 240))
    draw = ImageDraw.Draw(img)
    for i, colour in enumerate([(220, 40, 40), (40, 180, 60), (40, 60, 220), (230, 200, 40)]):
        draw.rectangle([28 * i, 0, 28 * i + 27, 41], fill=colour)
    draw.ellipse([40, 44, 80, 82], fill=(30, 30, 30))
    return img


@dataclass
class ImageReference:
    """What base + adapter answers to the image prompt."""

    prompt: list[int]
    output: list[int]  # greedy answer without its stop token
    logits: Any
    max_new_tokens: int


def _forced_logits(model: Any, processor: VisionProcessor, prompt: list[int], output: list[int], image: Any) -> Any:
    import torch

    inputs = {k: v.to(model.device) for k, v in media_inputs(processor, prompt + output, [image]).items()}
    with torch.inference_mode():
        logits = model(**inputs).logits[0, len(prompt) - 1:len(prompt) + len(output) - 1]
    return logits.float().cpu()


def image_reference(loaded: Any, processor: VisionProcessor, *, max_new_tokens: int) -> ImageReference:
    """Record base + adapter's answer and logits on the check image (call before merging)."""
    from tunesmith.model.generate import GenerationSettings

    image = check_image()
    prompt = encode_vision_prompt([Message("user", CHECK_QUESTION)], None, [image.size], loaded.template, processor)
    output = generate_with_images(loaded.model, processor, prompt, [image], stop_ids=loaded.stop_ids,
                                  settings=GenerationSettings(max_new_tokens=max_new_tokens))
    logits = _forced_logits(loaded.model, processor, prompt, output, image) if output else None
    return ImageReference(prompt, output, logits, max_new_tokens)


def write_processor_files(base_path: str, out: Path) -> VisionProcessor:
    """The image (and video) processor config and the model's own chat template, beside the merged weights."""
    processor = load_processor(base_path)
    save_processor(processor, out)
    if processor.chat_template:  # renders content lists (images) as well as the strings training rendered
        (out / "chat_template.jinja").write_text(processor.chat_template)
    return processor


def check_image_prompt(path: Path, ref: ImageReference, stop_ids: list[int], *, tolerance: float) -> ArtifactReport:
    """Load the merged folder as a user would and compare its answer on the check image with base + adapter's."""
    from transformers import AutoModelForImageTextToText

    from tunesmith.model.generate import GenerationSettings

    report = ArtifactReport("merged (image prompt)", ".")
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    processor = load_processor(str(path))
    image = check_image()
    got = generate_with_images(model, processor, ref.prompt, [image], stop_ids=stop_ids,
                               settings=GenerationSettings(max_new_tokens=ref.max_new_tokens))
    report.greedy_exact = "1/1" if got == ref.output else "0/1"
    if got != ref.output:
        report.fail(f"image prompt: greedy answer {processor.tokenizer.decode(got)!r} instead of "
                    f"{processor.tokenizer.decode(ref.output)!r}")
    if ref.logits is not None:
        logits = _forced_logits(model, processor, ref.prompt, ref.output, image)
        report.token_agreement = round(float((logits.argmax(-1) == ref.logits.argmax(-1)).float().mean()), 4)
        report.max_logit_diff = round(float((logits - ref.logits).abs().max()), 6)
        if report.max_logit_diff > tolerance:
            report.fail(f"image prompt: logits differ from base + adapter by up to {report.max_logit_diff:.4g} "
                        f"(tolerance {tolerance:g})")
    else:
        report.token_agreement = 1.0
    return report
