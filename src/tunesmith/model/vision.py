"""Vision-language models (Qwen2-VL, Qwen2.5-VL, and others transformers loads as image-text-to-text):
detection, the processor, which parts train, and per-part learning rates.

The processor is transformers' ``AutoProcessor`` when it loads. transformers' video processors need
torchvision, and PyPI's torchvision is a CUDA build that breaks beside a CPU torch ("operator
torchvision::nms does not exist"), so
``AutoProcessor`` fails for Qwen2-VL on such machines; then the same parts are loaded one by one
(the tokenizer, the image processor's PIL backend, the chat template) and video is reported as
unavailable. Either way the rest of tunesmith sees one ``VisionProcessor``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.config.schema import DataArgs, FinetuneArgs
from tunesmith.utils.console import note_once
from tunesmith.utils.errors import ConfigError, ModelLoadError

# Module-name parts that mark the vision encoder and the projector between it and the language model.
VISION_PARTS = ("visual", "vision_tower", "vision_model")
PROJECTOR_PARTS = ("merger", "multi_modal_projector", "mm_projector")
NO_VIDEO = ("videos need transformers' video processor, which needs torchvision; PyPI's torchvision is a CUDA "
            "build that breaks beside a CPU torch (see the README's 'Images and video'). On a GPU machine install "
            "the torchvision matching your torch")


def _config_dict(path: str, trust_remote_code: bool = False) -> dict[str, Any]:
    cfg = Path(path) / "config.json"
    if cfg.is_file():
        return json.loads(cfg.read_text())
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code).to_dict()
    except (OSError, ValueError):
        return {}


def is_vision_config(config: Any) -> bool:
    """Does a model config (dict or transformers config) describe a vision-language model?"""
    if isinstance(config, dict):
        return "vision_config" in config
    return getattr(config, "vision_config", None) is not None


def is_vision_model(path: str, *, trust_remote_code: bool = False) -> bool:
    """Is the model at ``path`` (a folder or hub id) a vision-language model? Reads only its config."""
    return is_vision_config(_config_dict(path, trust_remote_code))


@dataclass
class VisionProcessor:
    """What tunesmith needs of a multimodal processor."""

    tokenizer: Any
    image_processor: Any
    video_processor: Any | None
    chat_template: str | None
    image_token: str
    video_token: str
    source: str  # "AutoProcessor" or why the parts were loaded one by one
    video_kwargs: dict[str, Any] | None = None

    @property
    def merge_size(self) -> int:
        return int(getattr(self.image_processor, "merge_size", 1) or 1)

    def image_token_count(self, width: int, height: int) -> int:
        """Vision tokens one image of this size becomes (after the min / max pixel limits)."""
        ip = self.image_processor
        if hasattr(ip, "get_number_of_image_patches"):
            return int(ip.get_number_of_image_patches(height, width, {})) // self.merge_size ** 2
        from PIL import Image

        grid = self.process_images([Image.new("RGB", (width, height))])["image_grid_thw"][0]
        return int(grid.prod()) // self.merge_size ** 2

    def process_images(self, images: list[Any]) -> dict[str, Any]:
        """pixel_values and image_grid_thw for a list of PIL images."""
        return dict(self.image_processor(images=images, return_tensors="pt"))

    def process_videos(self, videos: list[str]) -> dict[str, Any]:
        """pixel_values_videos and video_grid_thw for video files (needs a video processor)."""
        if self.video_processor is None:
            raise ModelLoadError(NO_VIDEO)
        out = self.video_processor(videos=videos, return_tensors="pt", **(self.video_kwargs or {}))
        return dict(out)


def _image_kwargs(data: DataArgs | None) -> dict[str, Any]:
    if data is None:
        return {}
    kw = {}
    if data.image_min_pixels:
        kw["min_pixels"] = data.image_min_pixels
    if data.image_max_pixels:
        kw["max_pixels"] = data.image_max_pixels
    return kw


def _video_kwargs(data: DataArgs | None) -> dict[str, Any]:
    if data is None:
        return {}
    kw: dict[str, Any] = {}
    if data.video_fps:
        kw["fps"] = data.video_fps
    if data.video_maxlen:
        kw["max_frames"] = data.video_maxlen
    return kw


def _chat_template(path: str, tokenizer: Any) -> str | None:
    folder = Path(path)
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    js = folder / "chat_template.json"
    if js.is_file():
        return json.loads(js.read_text()).get("chat_template")
    return getattr(tokenizer, "chat_template", None)


def load_processor(path: str, data: DataArgs | None = None, *, trust_remote_code: bool = False) -> VisionProcessor:
    """The model's processor with the config's pixel limits (``image_min_pixels`` / ``image_max_pixels``
    become the image processor's ``min_pixels`` / ``max_pixels``; ``video_fps`` / ``video_maxlen`` the
    video processor's ``fps`` / ``max_frames``)."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    image_kw = _image_kwargs(data)
    try:
        proc = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code, **image_kw)
        tok, ip, vp = proc.tokenizer, proc.image_processor, getattr(proc, "video_processor", None)
        source, template = "AutoProcessor", getattr(proc, "chat_template", None)
    except ImportError as exc:  # torchvision missing (or a CUDA build) for the video processor
        source = f"tokenizer + PIL image processor (AutoProcessor: {str(exc).strip().splitlines()[0]})"
        try:
            tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
            ip = AutoImageProcessor.from_pretrained(path, backend="pil", trust_remote_code=trust_remote_code,
                                                    **image_kw)
        except (OSError, ValueError) as inner:
            raise ModelLoadError(f"cannot load the image processor of {path!r}: {inner}",
                                 hint="a vision model folder needs preprocessor_config.json beside config.json"
                                 ) from inner
        vp, template = None, None
        note_once(f"no-video:{path}", f"vision: {NO_VIDEO}; images work")
    except OSError as exc:
        raise ModelLoadError(f"cannot load the processor of {path!r}: {exc}") from exc
    if not hasattr(ip, "merge_size"):  # Gemma 3, LLaVA...: a fixed number of image tokens, no patch grid
        raise ModelLoadError(f"{path!r}: its image processor ({type(ip).__name__}) is not one tunesmith trains yet",
                             hint="supported: the Qwen2-VL family (Qwen2-VL, Qwen2.5-VL, Qwen3-VL)")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    template = template or _chat_template(path, tok)
    if template and not getattr(tok, "chat_template", None):
        tok.chat_template = template  # tunesmith's template resolution reads the tokenizer's
    image_token = getattr(tok, "image_token", None) or "<|image_pad|>"
    video_token = getattr(tok, "video_token", None) or "<|video_pad|>"
    return VisionProcessor(tok, ip, vp, template, image_token, video_token, source, _video_kwargs(data))


def save_processor(processor: VisionProcessor, out: str | Path) -> None:
    """Write the image processor's config (and the video processor's) beside a saved model or adapter,
    so the folder loads as the vision model it is."""
    processor.image_processor.save_pretrained(out)
    if processor.video_processor is not None:
        processor.video_processor.save_pretrained(out)


def _part(name: str) -> str:
    """'projector', 'vision' or 'language' for a parameter or module name."""
    parts = name.split(".")
    if any(p in PROJECTOR_PARTS or p.startswith("deepstack_merger") for p in parts):
        return "projector"
    if any(p in VISION_PARTS for p in parts):
        return "vision"
    return "language"


def _linear_names(model: Any, part: str, wanted: list[str]) -> list[str]:
    import torch

    return sorted(n for n, m in model.named_modules()
                  if isinstance(m, torch.nn.Linear) and _part(n) == part and "lm_head" not in n
                  and (wanted == ["all"] or n.split(".")[-1] in wanted))


def _projector_modules(model: Any) -> list[str]:
    """Top-most modules of the projector (model.visual.merger; for a list of mergers, such as Qwen3-VL's
    deepstack_merger_list, each one: peft trains whole modules, not containers)."""
    import torch

    modules = dict(model.named_modules())
    top = [n for n in modules if n and _part(n) == "projector" and _part(n.rsplit(".", 1)[0]) != "projector"]
    out = []
    for name in top:
        if isinstance(modules[name], (torch.nn.ModuleList, torch.nn.ModuleDict)):
            out += [f"{name}.{child}" for child, _ in modules[name].named_children()]
        else:
            out.append(name)
    return out


def vision_lora_config(model: Any, ft: FinetuneArgs) -> Any:
    """LoRA on the language model's linear layers; on the vision encoder's too when freeze_vision_tower is
    false; the projector trained whole (peft modules_to_save) when freeze_multi_modal_projector is false."""
    from peft import LoraConfig

    targets = _linear_names(model, "language", ft.lora_target)
    if not ft.freeze_vision_tower:
        vision = _linear_names(model, "vision", ft.lora_target)
        if not vision:
            have = sorted({n.split(".")[-1] for n in _linear_names(model, "vision", ["all"])})
            raise ConfigError([f"'freeze_vision_tower': false, but lora_target {ft.lora_target} names none of the "
                               f"vision encoder's linear layers ({', '.join(have)}); add them or use 'all'"])
        targets += vision
    if not targets:
        import torch

        have = sorted({n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise ConfigError([f"'lora_target': {ft.lora_target} matches no linear layer of the language model; "
                           f"its linear layers are {', '.join(have)} (or use 'all')"])
    return LoraConfig(
        r=ft.lora_rank, lora_alpha=ft.lora_alpha or 2 * ft.lora_rank, lora_dropout=ft.lora_dropout,
        target_modules=targets, use_rslora=ft.use_rslora, use_dora=ft.use_dora,
        modules_to_save=None if ft.freeze_multi_modal_projector else _projector_modules(model),
    )


def apply_vision_finetuning(model: Any, ft: FinetuneArgs, *, adapter_path: str | None = None) -> Any:
    """Prepare a vision-language model for training; returns the model to train."""
    if ft.finetuning_type == "freeze":
        raise ConfigError(["'finetuning_type': freeze is not available for vision-language models; use lora "
                           "(default) or full, with freeze_vision_tower / freeze_multi_modal_projector"])
    if ft.finetuning_type == "lora":
        from peft import PeftModel, get_peft_model

        if adapter_path:
            return PeftModel.from_pretrained(model, adapter_path, is_trainable=True)
        return get_peft_model(model, vision_lora_config(model, ft))
    if adapter_path:
        raise ConfigError(["'adapter_name_or_path' is only used with finetuning_type: lora"])
    frozen = {"vision": ft.freeze_vision_tower, "projector": ft.freeze_multi_modal_projector, "language": False}
    for name, param in model.named_parameters():
        param.requires_grad = not frozen[_part(name)]
    return model


def parameter_groups(model: Any, ft: FinetuneArgs, learning_rate: float, weight_decay: float
                     ) -> list[dict[str, Any]] | None:
    """Optimizer groups with vision_lr / merger_lr for those parts (None when neither is set, so the
    Trainer builds its own). Norms and biases get no weight decay, as in the Trainer's default."""
    if ft.vision_lr is None and ft.merger_lr is None:
        return None
    lrs = {"language": learning_rate, "vision": ft.vision_lr or learning_rate,
           "projector": ft.merger_lr or learning_rate}
    groups: dict[tuple[str, bool], list[Any]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            decay = param.ndim >= 2 and "norm" not in name.lower()
            groups.setdefault((_part(name), decay), []).append(param)
    if ft.vision_lr is not None and not any(part == "vision" for part, _ in groups):
        raise ConfigError(["'vision_lr' is set but no vision encoder weight trains; set freeze_vision_tower: false"])
    if ft.merger_lr is not None and not any(part == "projector" for part, _ in groups):
        raise ConfigError(["'merger_lr' is set but no projector weight trains; set "
                           "freeze_multi_modal_projector: false"])
    return [{"params": params, "lr": lrs[part], "weight_decay": weight_decay if decay else 0.0, "name": part}
            for (part, decay), params in groups.items()]


def media_inputs(processor: VisionProcessor, ids: list[int], images: list[Any]) -> dict[str, Any]:
    """Model inputs for one prompt whose image tokens are already expanded (see data.vision): input_ids,
    attention_mask, pixel_values, image_grid_thw and mm_token_type_ids (Qwen2-VL's 3-D positions)."""
    import torch

    batch: dict[str, Any] = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids),
                                                                                            dtype=torch.long)}
    if images:
        batch.update(processor.process_images(images))
        image_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
        batch["mm_token_type_ids"] = (batch["input_ids"] == image_id).long()
    return batch


def generate_with_images(model: Any, processor: VisionProcessor, ids: list[int], images: list[Any], *,
                         stop_ids: list[int], settings: Any) -> list[int]:
    """Greedy / sampled answer ids (without the prompt and the stop token) for a prompt with images."""
    import torch

    inputs = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in media_inputs(processor, ids, images).items()}
    settings.seed_rng()
    with torch.inference_mode():
        out = model.generate(**inputs, **settings.to_kwargs(), eos_token_id=stop_ids,
                             pad_token_id=processor.tokenizer.pad_token_id)
    answer = out[0, len(ids):].tolist()
    while answer and answer[-1] in stop_ids:
        answer.pop()
    return answer
