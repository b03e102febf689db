"""Tokenize conversations with images / video for a vision-language model.

The ``<image>`` / ``<video>`` placeholders become the model's own vision markers (Qwen2-VL:
``<|vision_start|><|image_pad|><|vision_end|>``, read from its chat template), the conversation is
rendered by the same template as text-only data (loss on the answers, end-of-turn trained), and each
image marker is expanded to as many tokens as the image becomes after the pixel limits: exactly
what the processor does, so the model's "image features and image tokens" always match. A record
whose tokens, vision tokens included, do not fit cutoff_len is refused with the length it needs,
never cut through its image.

``processor`` is duck-typed (tunesmith.model.vision.VisionProcessor): ``tokenizer``,
``image_token`` / ``video_token``, ``chat_template``, ``image_token_count(w, h)`` and
``process_videos(paths)``; this module does not import the model layer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tunesmith.data.media import IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER
from tunesmith.data.records import Message, SFTExample
from tunesmith.data.templates import Template
from tunesmith.data.tokenize import Encoded, encode_segments
from tunesmith.utils.errors import DataFormatError


@dataclass
class VisionEncoded:
    """One tokenized media record: ids and labels with the vision tokens expanded."""

    encoded: Encoded
    full_length: int
    image_tokens: list[int]  # per image
    video_tokens: list[int]  # per video

    @property
    def n_vision_tokens(self) -> int:
        return sum(self.image_tokens) + sum(self.video_tokens)


def _render(tokenizer: Any, template: str, content: list[dict[str, Any]]) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": content}], chat_template=template,
                                         tokenize=False)


def vision_markers(processor: Any) -> tuple[str, str]:
    """The text one image / one video stands for in the model's chat template (before expansion)."""
    tok, template = processor.tokenizer, processor.chat_template
    found = []
    for kind, token in (("image", processor.image_token), ("video", processor.video_token)):
        marker = None
        if template:
            try:
                with_media = _render(tok, template, [{"type": kind}, {"type": "text", "text": "\x00"}])
                without = _render(tok, template, [{"type": "text", "text": "\x00"}])
                start = without.index("\x00")
                if with_media[:start] == without[:start] and with_media.endswith(without[start:]):
                    marker = with_media[start:len(with_media) - len(without) + start]
            except Exception:  # a template that cannot render content parts: fall back to the token
                marker = None
        if not marker or token not in marker:
            vocab = tok.get_vocab()
            marker = f"<|vision_start|>{token}<|vision_end|>" if "<|vision_start|>" in vocab else token
        found.append(marker)
    return found[0], found[1]


def image_size(path: str) -> tuple[int, int]:
    """(width, height) read from the file's header."""
    from PIL import Image

    with Image.open(path) as img:
        return img.size


def media_token_counts(example: SFTExample, processor: Any) -> tuple[list[int], list[int]]:
    """Vision tokens per image and per video of one record."""
    images = [processor.image_token_count(*image_size(p)) for p in example.images]
    videos = []
    if example.videos:
        grids = processor.process_videos(example.videos)["video_grid_thw"]
        videos = [int(g.prod()) // processor.merge_size ** 2 for g in grids]
    return images, videos


def _expand(text: str, token: str, counts: list[int], start: int) -> tuple[str, int]:
    """Replace each ``token`` in ``text`` by ``counts[i]`` copies, i counting from ``start``."""
    pieces = text.split(token)
    out = pieces[0]
    for piece in pieces[1:]:
        out += token * counts[start] + piece
        start += 1
    return out, start


def media_messages(example: SFTExample, image_marker: str, video_marker: str) -> tuple[list[Message], str | None]:
    """The record's messages with its placeholders replaced by the model's vision markers."""
    def sub(text: str) -> str:
        return text.replace(IMAGE_PLACEHOLDER, image_marker).replace(VIDEO_PLACEHOLDER, video_marker)

    msgs = [dataclasses.replace(m, content=sub(m.content)) for m in example.messages]
    return msgs, sub(example.system) if example.system else None


def expand_segments(segments: list[tuple[str, bool]], processor: Any, image_tokens: list[int],
                    video_tokens: list[int]) -> list[tuple[str, bool]]:
    """Expand every image / video token of rendered segments to its record's token count."""
    out, i_img, i_vid = [], 0, 0
    for text, trained in segments:
        text, i_img = _expand(text, processor.image_token, image_tokens, i_img)
        text, i_vid = _expand(text, processor.video_token, video_tokens, i_vid)
        out.append((text, trained))
    return out


def encode_vision_sft(example: SFTExample, template: Template, processor: Any, *, train_on_prompt: bool = False,
                      mask_history: bool = False) -> VisionEncoded:
    """Tokenize one record with its vision tokens expanded (never truncated: see ``cutoff_problem``)."""
    tok = processor.tokenizer
    image_tokens, video_tokens = media_token_counts(example, processor)
    image_marker, video_marker = vision_markers(processor)
    msgs, system = media_messages(example, image_marker, video_marker)
    segments = template.segments(msgs, system, tok.bos_token, tok.eos_token)
    rendered = "".join(t for t, _ in segments)
    if rendered.count(processor.image_token) != len(example.images):
        raise DataFormatError(f"{example.origin}: the chat template '{template.name}' kept "
                              f"{rendered.count(processor.image_token)} of {len(example.images)} images",
                              hint="use the model's own template (template: auto)")
    segments = expand_segments(segments, processor, image_tokens, video_tokens)
    ids, labels = encode_segments(tok, segments, train_on_prompt=train_on_prompt, last_only=mask_history,
                                  whole=hasattr(template, "source"))
    origin = str(example.origin) if example.origin else None
    return VisionEncoded(Encoded(ids, labels, origin=origin), len(ids), image_tokens, video_tokens)


def cutoff_problem(enc: VisionEncoded, cutoff_len: int) -> str | None:
    """Why a media record cannot be trained at cutoff_len (None when it fits)."""
    if enc.full_length <= cutoff_len:
        return None
    return (f"{enc.encoded.origin}: needs {enc.full_length} tokens ({enc.n_vision_tokens} of them vision tokens for "
            f"{len(enc.image_tokens)} image(s) and {len(enc.video_tokens)} video(s)); cutoff_len={cutoff_len} would "
            "cut vision tokens")


def raise_cutoff_problems(problems: list[str], cutoff_len: int, needed: int) -> None:
    if not problems:
        return
    shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
    raise DataFormatError(
        f"{len(problems)} record(s) with images / video are longer than cutoff_len={cutoff_len}:\n  {shown}",
        hint=f"set cutoff_len to at least {needed}, or lower image_max_pixels (fewer pixels, fewer vision tokens); "
        "cutting would leave the model fewer image tokens than image features",
    )


def media_report(examples: list[Any], template: Template, processor: Any, cutoff_len: int
                 ) -> tuple[dict[str, int], dict[int, int]]:
    """For 'data check': media counts and vision tokens of a split, and the full length (vision tokens
    included) of each media record by its index. Records that would not fit cutoff_len are raised,
    each with the length it needs."""
    counts = {"records_with_media": 0, "images": 0, "videos": 0, "vision_tokens": 0}
    lengths: dict[int, int] = {}
    problems, needed = [], 0
    for i, ex in enumerate(examples):
        if not (isinstance(ex, SFTExample) and (ex.images or ex.videos)):
            continue
        enc = encode_vision_sft(ex, template, processor)
        counts["records_with_media"] += 1
        counts["images"] += len(ex.images)
        counts["videos"] += len(ex.videos)
        counts["vision_tokens"] += enc.n_vision_tokens
        lengths[i] = enc.full_length
        if problem := cutoff_problem(enc, cutoff_len):
            problems.append(problem)
            needed = max(needed, enc.full_length)
    raise_cutoff_problems(problems, cutoff_len, needed)
    return counts, lengths


def encode_vision_prompt(messages: list[Message], system: str | None, images: list[tuple[int, int]],
                         template: Template, processor: Any) -> list[int]:
    """Token ids of a prompt with images, ready for generation: ``<image>`` placeholders in the messages
    (one per image, in order; ``images`` gives each one's (width, height)) become the model's vision
    tokens, expanded as in training."""
    example = SFTExample(messages, system, images=[""] * len(images))
    n_marks = sum(m.content.count(IMAGE_PLACEHOLDER) for m in messages)
    if n_marks != len(images):
        raise DataFormatError(f"the prompt has {n_marks} {IMAGE_PLACEHOLDER} placeholder(s) for {len(images)} "
                              "image(s)", hint=f"put one {IMAGE_PLACEHOLDER} where each image goes")
    image_marker, video_marker = vision_markers(processor)
    msgs, system = media_messages(example, image_marker, video_marker)
    tok = processor.tokenizer
    segments = template.segments(msgs, system, tok.bos_token, tok.eos_token, add_generation_prompt=True)
    counts = [processor.image_token_count(w, h) for w, h in images]
    segments = expand_segments(segments, processor, counts, [])
    text = "".join(t for t, _ in segments)
    if hasattr(template, "source"):
        return tok.encode(text, add_special_tokens=False)
    return [i for t, _ in segments for i in (tok.encode(t, add_special_tokens=False) if t else [])]
