"""GRPO, top to bottom: sample several answers per prompt, score them with the rewards named in the
config, and move the model toward the better ones (TRL's ``GRPOTrainer``).

Prompts and reference answers come from instruction data (the ``output`` is the reference the rule
rewards compare with). The KL weight is 0, so no reference model is loaded at all. On a CPU generation
dominates the time: keep ``max_completion_length`` and ``num_generations`` small. Mean reward of greedy
answers on held-out prompts (or the first training prompts) is measured before and after training.
"""

from __future__ import annotations

import time
from typing import Any

from tunesmith.config.schema import Config
from tunesmith.data.preference import prompt_record
from tunesmith.data.tokenize import encode_prompt
from tunesmith.model.generate import GenerationSettings, generate_ids
from tunesmith.model.load import end_token_ids
from tunesmith.train.callbacks import JsonlLogger, read_log
from tunesmith.train.data import load_splits
from tunesmith.train.rewards import RewardFn, resolve_rewards
from tunesmith.train.runner import RunResult, finish_run, prepare_output_dir, resolve_checkpoint, set_threads
from tunesmith.train.stop import StopOnSignal
from tunesmith.train.trl_setup import examples_of, load_policy, load_text_side, tokens_per_second, trl_args

PROBE_PROMPTS = 16


def mean_reward(model: Any, tokenizer: Any, template: Any, examples: list[Any], rewards: list[RewardFn],
                max_new_tokens: int) -> dict[str, Any]:
    """Greedy answers to ``examples``' prompts, scored by every reward; mean per reward and overall."""
    prompts = [encode_prompt(e.prompt_messages, e.system, template, tokenizer) for e in examples]
    was_training = model.training
    model.eval()
    outs = generate_ids(model, prompts, stop_ids=end_token_ids(tokenizer, template.stop_words),
                        pad_id=tokenizer.pad_token_id, settings=GenerationSettings(max_new_tokens=max_new_tokens))
    model.train(was_training)
    texts = [tokenizer.decode(o, skip_special_tokens=True) for o in outs]
    answers = [e.response for e in examples]
    turns = [prompt_record(e)["prompt"] for e in examples]  # what TRL passes to reward functions
    scores: dict[str, Any] = {}
    for fn in rewards:
        values = [v for v in fn(completions=texts, answer=answers, prompts=turns) if v is not None]
        scores[fn.__name__] = round(sum(values) / max(1, len(values)), 4)
    scores["mean_reward"] = round(sum(scores.values()) / max(1, len(scores)), 4)
    scores["example_answer"] = texts[0][:200] if texts else ""
    return scores


def run_grpo(cfg: Config) -> RunResult:
    """Reinforcement learning with rule or user rewards; returns the run's result."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    started = time.time()
    set_threads(cfg)
    rewards = resolve_rewards(cfg.finetune.reward_funcs, cfg.source)  # name errors before anything loads
    splits = load_splits(cfg)
    train_ex = examples_of("sft", splits.train, "grpo")
    probe_ex = examples_of("sft", splits.val, "grpo") if splits.val else train_ex[:PROBE_PROMPTS]
    model_path, adapter_path, tokenizer, template = load_text_side(cfg)
    checkpoint = resolve_checkpoint(cfg)
    prepare_output_dir(cfg)  # nothing is written before this point
    f = cfg.finetune
    args = trl_args(cfg, GRPOConfig, has_eval=False, n_rows=len(train_ex) * f.num_generations,
                    num_generations=f.num_generations, max_completion_length=f.max_completion_length,
                    temperature=f.grpo_temperature, beta=0.0, log_completions=False)
    model, peft_config = load_policy(cfg, model_path, adapter_path)
    logger = JsonlLogger(cfg.train.output_dir, append=bool(checkpoint))
    trainer = GRPOTrainer(model=model, reward_funcs=rewards, args=args,
                          train_dataset=Dataset.from_list([prompt_record(e) for e in train_ex]),
                          processing_class=tokenizer, peft_config=peft_config, callbacks=[logger, StopOnSignal()])
    before = mean_reward(trainer.model, tokenizer, template, probe_ex, rewards, f.max_completion_length)
    trainer.train(resume_from_checkpoint=checkpoint)
    after = mean_reward(trainer.model, tokenizer, template, probe_ex, rewards, f.max_completion_length)
    rows = read_log(cfg.train.output_dir)
    sampled = [r["reward"] for r in rows if "reward" in r]
    return finish_run(cfg, trainer, tokenizer, template, started=started, extra={
        "reward_funcs": f.reward_funcs,
        "num_generations": f.num_generations,
        "max_completion_length": f.max_completion_length,
        "train_prompts": len(train_ex),
        "probe_split": "val" if splits.val else f"train (first {len(probe_ex)} prompts)",
        "before": before,
        "after": after,
        "sampled_reward_first": sampled[0] if sampled else None,
        "sampled_reward_last": sampled[-1] if sampled else None,
        "tokens_per_s": tokens_per_second(rows),
    })
