"""Tiny random Qwen2-VL / Qwen2.5-VL models and their processor parts, built in-process (no download).

The folder holds what a hub checkpoint holds: config.json + weights, a tokenizer with the family's
vision special tokens, preprocessor_config.json (the image processor, with small pixel limits so an
image is a few tokens) and the family's chat template (chat_template.jinja, as Qwen2-VL-2B-Instruct
ships it).
"""

from __future__ import annotations

from pathlib import Path

from conftest import CORPUS

VLM_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
               "<|image_pad|>", "<|video_pad|>"]

# Qwen2-VL-2B-Instruct's chat template (Qwen2.5-VL's is the same).
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == "
    "'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}"
    "{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}


def build_vlm_tokenizer(path: Path) -> dict[str, int]:
    """A byte-level BPE tokenizer with Qwen's special tokens and chat template; returns their ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=VLM_SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator((CORPUS + [" ".join(COLOURS), "What colour is this? Describe the picture."]) * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = QWEN2_VL_TEMPLATE
    fast.save_pretrained(path)
    (path / "chat_template.jinja").write_text(QWEN2_VL_TEMPLATE)
    return {t: fast.convert_tokens_to_ids(t) for t in VLM_SPECIAL} | {"vocab": len(fast)}


def build_tiny_vlm(path: Path, family: str = "qwen2_vl", *, seed: int = 0) -> Path:
    """A 2-layer random Qwen2-VL (or Qwen2.5-VL, Qwen3-VL) with a 2-block vision tower, hidden size 32."""
    import torch
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    path.mkdir(parents=True, exist_ok=True)
    ids = build_vlm_tokenizer(path)
    # 28x28 pixels per vision token (Qwen3-VL: 32x32): a 56x56 image is 4 tokens, 84x56 is 6.
    patch = 16 if family == "qwen3_vl" else 14
    Qwen2VLImageProcessorPil(min_pixels=(2 * patch) ** 2, max_pixels=(2 * patch) ** 2 * 16,
                             patch_size=patch).save_pretrained(path)
    text = dict(vocab_size=ids["vocab"], hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                rope_parameters={"rope_type": "default", "mrope_section": [4, 2, 2], "rope_theta": 10000.0},
                bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                initializer_range=0.2)  # larger than real (0.02) so a few LoRA steps visibly lower the loss
    tokens = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                  vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
                  eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], bos_token_id=None)
    torch.manual_seed(seed)
    if family == "qwen2_vl":
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

        vision = dict(depth=2, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2)
        model = Qwen2VLForConditionalGeneration(Qwen2VLConfig(text_config=text, vision_config=vision, **tokens))
    elif family == "qwen3_vl":
        from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

        text |= {"head_dim": 16, "rope_parameters": {**text["rope_parameters"], "mrope_interleaved": True}}
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32, patch_size=16,
                      spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64,
                      deepstack_visual_indexes=[1])
        model = Qwen3VLForConditionalGeneration(Qwen3VLConfig(text_config=text, vision_config=vision, **tokens))
    else:
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                      patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                      fullatt_block_indexes=[1])
        model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(text_config=text, vision_config=vision,
                                                                    **tokens))
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(path, safe_serialization=True)
    return path


def draw_image(path: Path, colour: str, size: tuple[int, int] = (56, 56)) -> Path:
    """A plain image of one colour with a darker square in a corner (so pictures are not constant)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, COLOURS[colour])
    ImageDraw.Draw(img).rectangle([0, 0, size[0] // 3, size[1] // 3], fill=tuple(c // 2 for c in COLOURS[colour]))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
