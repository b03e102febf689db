"""The families users fine-tune, each as a tiny random model built from its config: train (LoRA, the fast
path on, and the fast loss equal to the standard one) -> merge -> generate -> GGUF export, with the
export's parity checks (merged == base + adapter, greedy output, template, stop ids) on every step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tunesmith.config import load_config
from tunesmith.export.gguf import gguf_problems
from tunesmith.export.run import run_export
from tunesmith.train.sft import run_sft

SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<|im_start|>", "<|im_end|>",
           "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<s>", "</s>", "[INST]",
           "[/INST]", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>", "<think>", "</think>"]
CORPUS = ["Which school subject does this question belong to? Answer with one word. What is 2 + 3?",
          "判断下面这道题属于哪个学科，只回答学科名称。 数学 语文 英语 物理 化学 历史 地理 生物",
          "math Chinese English physics chemistry history geography biology user model assistant system"]

# name -> (transformers config class, extra config, template, eos token)
ARCHS = {
    "qwen2": ("Qwen2Config", {}, "qwen", "<|im_end|>"),
    "qwen3": ("Qwen3Config", {"head_dim": 128}, "qwen3", "<|im_end|>"),  # the family's head_dim (GGUF needs it)
    "llama": ("LlamaConfig", {}, "llama3", "<|eot_id|>"),
    "mistral": ("MistralConfig", {"sliding_window": None}, "mistral", "</s>"),
    "phi3": ("Phi3Config", {"original_max_position_embeddings": 256}, "phi3", "<|endoftext|>"),
}


def _tokenizer(path: Path, eos: str) -> int:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS * 20, trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIAL,
                                                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos = "<s>" if eos == "</s>" else "<|begin_of_text|>" if eos == "<|eot_id|>" else None
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token="<pad>", unk_token="<unk>",
                            bos_token=bos).save_pretrained(path)
    return tok.get_vocab_size()


def _tiny(arch: str, path: Path) -> Path:
    import transformers

    cls_name, extra, _, eos = ARCHS[arch]
    vocab = _tokenizer(path, eos)
    ids = json.loads((path / "tokenizer.json").read_text())["added_tokens"]
    by = {t["content"]: t["id"] for t in ids}
    torch.manual_seed(0)
    config = getattr(transformers, cls_name)(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False, pad_token_id=0,
        eos_token_id=by[eos], bos_token_id=by.get("<s>", by["<|begin_of_text|>"]), **extra)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module", params=[*ARCHS, "gemma3"])
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, dataset_dir_module: Path):
    arch = request.param
    root = tmp_path_factory.mktemp(f"arch-{arch}")
    if arch == "gemma3":
        model_dir, template = request.getfixturevalue("tiny_gguf_model_dir"), "gemma"
    else:
        model_dir, template = _tiny(arch, root / "model"), ARCHS[arch][2]
    common = {"model_name_or_path": str(model_dir), "template": template, "dataset_dir": str(dataset_dir_module),
              "dataset": "toy_train", "cutoff_len": 128, "per_device_train_batch_size": 4, "bf16": False,
              "report_summary": False, "lora_rank": 8, "learning_rate": 3e-2, "logging_steps": 1}
    result = run_sft(load_config(None, {**common, "max_steps": 12, "output_dir": str(root / "run")}))
    return arch, model_dir, template, result, common, root


@pytest.fixture(scope="module")
def dataset_dir_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [{"instruction": f"Which subject is question {i}?", "input": q, "output": a}
            for i, (q, a) in enumerate([("What is 2 + 3?", "math"), ("水的化学式是什么？", "化学"),
                                        ("Who was the first emperor of Qin?", "history"),
                                        ("长江流入哪个海？", "地理"), ("What does the heart do?", "biology"),
                                        ("计算 5 × 6。", "数学"), ("Give a synonym for happy.", "English"),
                                        ("电压是多少？", "物理")])]
    d = tmp_path_factory.mktemp("arch-data")
    (d / "train.json").write_text(json.dumps(rows, ensure_ascii=False))
    (d / "dataset_info.json").write_text(json.dumps({"toy_train": {"file_name": "train.json"}}))
    return d


def test_training_lowers_the_loss_on_the_fast_path(trained) -> None:  # noqa: ANN001
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunesmith.train.fast import supports_fast_loss, supports_packing

    arch, model_dir, _, result, _, _ = trained
    m = result.metrics
    assert m["final_loss"] < m["first_loss"], (arch, m["first_loss"], m["final_loss"])
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                          LoraConfig(r=4, target_modules="all-linear"))
    assert supports_fast_loss(lora) and supports_packing(lora), f"{arch}: the fast path would switch off"


def test_fast_loss_equals_the_standard_loss(trained) -> None:  # noqa: ANN001
    arch, _, _, _, common, root = trained
    losses = {}
    for fast in (True, False):
        cfg = load_config(None, {**common, "max_steps": 1, "fast_path": fast, "learning_rate": 1e-9,
                                 "output_dir": str(root / f"one-{fast}"), "seed": 3})
        losses[fast] = run_sft(cfg).metrics["first_loss"]
    assert losses[True] == pytest.approx(losses[False], rel=1e-3), (arch, losses)


def test_merge_generate_and_gguf_export_pass_the_parity_checks(trained) -> None:  # noqa: ANN001
    arch, model_dir, template, result, _, root = trained
    config = json.loads((Path(model_dir) / "config.json").read_text())
    gguf = not gguf_problems(config)
    assert gguf or arch not in ("qwen2", "qwen3", "llama", "mistral", "phi3", "gemma3"), gguf_problems(config)
    cfg = load_config(None, {"model_name_or_path": str(model_dir), "adapter_name_or_path": str(result.output_dir),
                             "template": template, "dataset": "unused", "bf16": False,
                             "export_dir": str(root / "export"), "export_quantization": "gguf-f16" if gguf else "none",
                             "export_check_tokens": 8, "export_check_samples": 3})
    exported = run_export(cfg)
    names = {r.name: r for r in exported.reports}
    assert names["merged"].passed and names["merged"].greedy_exact == "3/3", names["merged"].problems
    if gguf:
        g = names["gguf-f16"]
        assert g.passed and g.template_ok and g.stop_ids_ok, (arch, g.problems)
    # generate from the exported folder exactly as a user would, with plain transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(exported.export_dir)
    model = AutoModelForCausalLM.from_pretrained(exported.export_dir).eval()
    ids = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
