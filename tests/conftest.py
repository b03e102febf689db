"""Shared fixtures: tiny models and tokenizers built in-process, fully offline.

``tiny_model_dir`` is a 2-layer Gemma-3-architecture model (hidden 32) with a small byte-level BPE
tokenizer that knows every chat template's special tokens. It is saved as an ordinary Hugging Face
folder, so tests go through exactly the loading code users do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TUNESMITH_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<|im_start|>", "<|im_end|>",
           "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]

CORPUS = [
    "Which school subject does this question belong to? Answer with one word.",
    "判断下面这道题属于哪个学科，只回答学科名称。 数学 语文 英语 物理 化学 历史 地理 生物",
    "math Chinese English physics chemistry history geography biology",
    "The quick brown fox jumps over the lazy dog. Hello world, how are you today?",
    "user model assistant system Human Assistant System: you are a helpful assistant",
    "0123456789 + - * / = ? ! . , : ; ( ) [ ] { } \" ' \n",
]


def build_tokenizer(path: Path) -> None:
    """Train a tiny byte-level BPE tokenizer and save it as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", unk_token="<unk>")
    fast.save_pretrained(path)


def build_tiny_model(path: Path, vocab_size: int, *, layers: int = 2, hidden: int = 32) -> None:
    """A randomly initialised Gemma 3 text model with the given vocabulary size."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=1024,
        sliding_window=64,
        layer_types=["sliding_attention", "full_attention"][:layers] + ["full_attention"] * (layers - 2),
        pad_token_id=0, eos_token_id=1, bos_token_id=2, tie_word_embeddings=True,
    )
    model = Gemma3ForCausalLM(config)
    model.generation_config.eos_token_id = [1, 5]  # <eos>, <end_of_turn>
    model.save_pretrained(path, safe_serialization=True)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path to a tiny Gemma-3-style model + tokenizer folder (built once per test session)."""
    path = tmp_path_factory.mktemp("tiny-gemma")
    build_tokenizer(path)
    vocab = len(json.loads((path / "tokenizer.json").read_text())["model"]["vocab"])
    build_tiny_model(path, vocab)
    return path


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):  # noqa: ANN201 - a transformers tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def alpaca_rows() -> list[dict[str, str]]:
    """Eight varied instruction/answer pairs (Chinese and English)."""
    return [
        {"instruction": "Which subject is this? Answer with one word.", "input": "What is 2 + 3?", "output": "math"},
        {"instruction": "判断下面这道题属于哪个学科。", "input": "水的化学式是什么？", "output": "化学"},
        {"instruction": "Classify the subject.", "input": "Who was the first emperor of Qin?", "output": "history"},
        {"instruction": "这道题是哪一科的？", "input": "长江流入哪个海？", "output": "地理"},
        {"instruction": "Name the subject.", "input": "What does the heart do?", "output": "biology"},
        {"instruction": "请给下列题目分类。", "input": "计算 5 × 6。", "output": "数学"},
        {"instruction": "Subject:", "input": "Give a synonym for happy.", "output": "English"},
        {"instruction": "学科分类：", "input": "电阻为2欧，电流为3安，电压是多少？", "output": "物理"},
    ]


@pytest.fixture
def dataset_dir(tmp_path: Path, alpaca_rows: list[dict[str, str]]) -> Path:
    """A folder with dataset_info.json and a small Alpaca dataset split into train/val/test."""
    d = tmp_path / "data"
    d.mkdir()
    (d / "train.json").write_text(json.dumps(alpaca_rows * 2, ensure_ascii=False))
    (d / "val.json").write_text(json.dumps(alpaca_rows[:4], ensure_ascii=False))
    (d / "test.json").write_text(json.dumps(alpaca_rows[4:], ensure_ascii=False))
    (d / "dataset_info.json").write_text(json.dumps({
        "toy_train": {"file_name": "train.json"},
        "toy_val": {"file_name": "val.json"},
        "toy_test": {"file_name": "test.json"},
    }))
    return d


@pytest.fixture
def tiny_train_overrides(tiny_model_dir: Path, dataset_dir: Path, tmp_path: Path) -> dict:
    """Config values for a fast training run on the tiny model."""
    return {
        "model_name_or_path": str(tiny_model_dir), "template": "gemma", "dataset_dir": str(dataset_dir),
        "dataset": "toy_train", "eval_dataset": "toy_val", "test_dataset": "toy_test", "cutoff_len": 128,
        "output_dir": str(tmp_path / "run"), "per_device_train_batch_size": 4, "num_train_epochs": 2,
        "learning_rate": 5e-2, "logging_steps": 1, "save_steps": 4, "report_summary": False, "bf16": False,
    }


def make_lora_adapter(model_dir: Path, out: Path, *, seed: int, rank: int = 4, scale: float = 0.5) -> Path:
    """A LoRA adapter with random (non-zero) A and B on a tiny model, saved as a run folder would be."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear",
                                                  init_lora_weights=False))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.normal_(0, scale)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two different random LoRA adapters ('alpha', 'beta') on ``tiny_model_dir``."""
    root = tmp_path_factory.mktemp("tiny-adapters")
    return {name: make_lora_adapter(tiny_model_dir, root / name, seed=seed)
            for name, seed in (("alpha", 1), ("beta", 2))}


def build_sentencepiece_tokenizer(path: Path) -> None:
    """A tiny tokenizer built like Gemma's: BPE over '▁'-spelled text with byte fallback (<0xNN>
    tokens), so a GGUF stores it as llama.cpp's sentencepiece ('llama') vocabulary, as it does Gemma's."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    def shaped(model: models.Model) -> Tokenizer:
        tok = Tokenizer(model)
        tok.normalizer = normalizers.Replace(" ", "\u2581")
        tok.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_previous")
        return tok

    learner = shaped(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    learner.train_from_iterator(CORPUS * 20, trainers.BpeTrainer(vocab_size=700, special_tokens=SPECIAL))
    learned = json.loads(learner.to_str())["model"]
    vocab = {t: i for i, t in enumerate(SPECIAL)}
    vocab.update({f"<0x{b:02X}>": len(SPECIAL) + b for b in range(256)})
    for token, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]
    tok = shaped(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(path)


@pytest.fixture(scope="session")
def tiny_gguf_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Gemma 3 whose every setting survives a GGUF round trip (head_dim 256, the family's layer
    pattern and rope values), with non-trivial norm weights so Gemma's ``1 + w`` storage is exercised,
    and a Gemma-style sentencepiece tokenizer."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    path = tmp_path_factory.mktemp("tiny-gemma-gguf")
    build_sentencepiece_tokenizer(path)
    vocab = len(json.loads((path / "tokenizer.json").read_text())["model"]["vocab"])
    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=256,
                              max_position_embeddings=1024, sliding_window=64, pad_token_id=0, eos_token_id=1,
                              bos_token_id=2, tie_word_embeddings=True)
    model = Gemma3ForCausalLM(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.normal_(0, 0.3)
    model.generation_config.eos_token_id = [1, 5]
    model.save_pretrained(path, safe_serialization=True)
    return path


class CliRun:
    """What a user sees from one ``tunesmith`` command: exit code, stdout, and stderr with rich's panel
    borders removed and white space collapsed (so a wrapped message still matches)."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err
        self.err_text = " ".join(err.replace("│", " ").replace("╭", " ").replace("╰", " ").replace("─", " ").split())


@pytest.fixture
def cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - a callable
    """Run ``tunesmith ARGS`` through the real entry point (``cli.main.main``) in this process, so the
    error handling a user meets (one block on stderr, exit code 2, no traceback) is what is tested."""
    from tunesmith.cli.main import main

    def run(*args: str) -> CliRun:
        monkeypatch.setattr("sys.argv", ["tunesmith", *args])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2-VL (tokenizer with its vision tokens, PIL image processor, chat template)."""
    from tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-qwen2-vl"), "qwen2_vl")


@pytest.fixture(scope="session")
def tiny_vlm25_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2.5-VL, built like ``tiny_vlm_dir``."""
    from tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-qwen25-vl"), "qwen2_5_vl")
