"""The end-of-turn token is trained, so a tuned model stops by itself (an export that stops only at <eos>
runs on to max_new_tokens)."""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.config import load_config
from tunesmith.data.records import Message
from tunesmith.data.tokenize import encode_prompt
from tunesmith.inference.load import load_inference_model
from tunesmith.model.generate import GenerationSettings, generate_ids
from tunesmith.train.sft import run_sft


def test_tuned_tiny_model_stops_at_end_of_turn(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    # One example (a dataset of one example repeated is refused as a broken export; the gradient is the same)
    rows = [{"instruction": "Which subject? What is 2 + 3?", "output": "math"}]
    (data / "one.json").write_text(json.dumps(rows))
    cfg = load_config(None, {
        "model_name_or_path": str(tiny_model_dir), "template": "gemma", "dataset_dir": str(data),
        "dataset": "one.json", "output_dir": str(tmp_path / "run"), "finetuning_type": "full",
        "learning_rate": 1e-2, "num_train_epochs": 30, "per_device_train_batch_size": 8, "warmup_ratio": 0.0,
        "lr_scheduler_type": "constant", "report_summary": False, "bf16": False, "logging_steps": 5,
    })
    run_sft(cfg)
    loaded = load_inference_model(load_config(None, {"model_name_or_path": str(tmp_path / "run"),
                                                     "template": "gemma", "dataset": "x", "bf16": False}))
    prompt = encode_prompt([Message("user", "Which subject? What is 2 + 3?")], None, loaded.template,
                           loaded.tokenizer)
    raw = loaded.model.generate(input_ids=__import__("torch").tensor([prompt]), max_new_tokens=20,
                                do_sample=False)  # uses the saved generation_config's eos ids
    new = raw[0, len(prompt):].tolist()
    end_of_turn = loaded.tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert end_of_turn in new and len(new) < 20, loaded.tokenizer.decode(new)
    out = generate_ids(loaded.model, [prompt], stop_ids=loaded.stop_ids, pad_id=loaded.tokenizer.pad_token_id,
                       settings=GenerationSettings(max_new_tokens=20))
    assert loaded.tokenizer.decode(out[0]) == "math"
