"""The notes' hyper-parameter and data rules, as functions from (config, data profile) to advice.

Each rule returns one ``Advice``: the setting, its current value, the recommended value, a one-line
reason, and where in the notes the rule comes from. Rules run in order over a *proposed* config,
so later rules see earlier recommendations (the step count uses the recommended epochs, warm-up
and evaluation use the recommended batch).

Sources: "notes/000" is the LLaMA-Factory / AutoDL note (LLM 微调), "notes/001" the practical
fine-tuning guide (微调: 数据 / 训练 / 微调成本 / 测评), as kept in the project's shared notes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tunesmith.advise.profile import DataProfile
from tunesmith.config.schema import Config
from tunesmith.train.steps import default_eval_steps, steps_per_epoch, total_steps  # the run's own count

Level = Literal["ok", "info", "warn"]

SOURCES = {
    "steps": 'notes/001 训练·参数·批处理大小: "保证有足够的迭代次数（1000步以上）…可以适当减少批量大小"',
    "epochs": 'notes/001 训练·参数·epoch: "2千条数据5轮，2万条数据2轮…更推荐增加数据的多样性"',
    "lr_full": 'notes/001 训练·参数·学习率: "初始学习率建议选择5e-6至1e-5之间"',
    "lr_lora": 'notes/000 微调参数·learn_rating: "1e-4→1e-5 欠拟合…1e-4→7e-4 学习效果增加"',
    "warmup": 'notes/001 其他参数·学习率预热比例: "0.05-0.1；数据集很小10%-20%；很大2%-5%"',
    "eval": 'notes/001 其他参数·验证步数: "一个训练周期内能验证10-20次；不宜过频"',
    "alpha": 'notes/001 其他参数·LoRA 阿尔法: "将 alpha 设置为 r 的两倍"',
    "rank": 'notes/001 其他参数·LoRA 秩值: "常用值在 4-64 之间…从 r=8 或 r=16 开始"',
    "dropout": 'notes/001 其他参数·LoRA 丢弃率: "数据集较小…0.05 到 0.2"',
    "weight_decay": 'notes/001 其他参数·权重衰减: "典型值在 0.01 到 0.1 之间"',
    "scheduler": 'notes/001 其他参数·学习率调整策略: "余弦衰减或线性衰减是最常用且稳定的选择"',
    "cutoff": 'notes/001 训练·参数·序列长度: "保证某些重要的数据不会被错误截断"',
    "cutoff_model": 'notes/001 其他参数·序列长度: "需要与模型预训练时的长度保持一致或接近"',
    "template": 'notes/001 数据·高质量训练数据 2: "指令需要多样化，以避免对某些短语的过拟合"',
    "duplicates": 'notes/001 数据·高质量训练数据 2: "问题与回答的类型多样、场景多样、避免重复"',
    "split": 'notes/001 数据·技巧: "训练数据集：验证数据集：测试数据集（7: 1.5: 1.5）"',
    "leak": 'notes/001 测评·模型评估 1: "模型只能回答训练过的内容，可能是过拟合"',
    "lora_vs_full": 'notes/001 全量参数精调与LoRA: "数据量比较少（低于1万）…推荐使用 LoRA"',
    "data_size": 'notes/001 数据·确定微调任务场景: "准备约几千条高质量精调数据"',
}

MIN_STEPS = 1000
EVAL_PER_EPOCH = (10, 20)
MAX_EVAL_COST = 1.0  # evaluation may take at most this share of training time
SMALL_DATA, LARGE_DATA = 2000, 20000  # the notes' reference sizes (2千条 / 2万条)
TEMPLATE_SHARE_LIMIT = 0.3


@dataclass
class Advice:
    """One row of the advice table."""

    key: str
    current: str
    recommended: str
    reason: str
    source: str
    level: Level = "ok"
    change: dict[str, Any] = field(default_factory=dict)  # config keys to set for --write
    details: list[str] = field(default_factory=list)  # e.g. which examples are cut

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Context:
    """The config being advised, the data, and the recommendations accepted so far."""

    cfg: Config
    data: DataProfile
    proposed: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        if key in self.proposed:
            return self.proposed[key]
        if key == "lora_alpha":
            return self.cfg.lora_alpha
        return self.cfg.flat()[key]

    @property
    def n_train(self) -> int:
        """Training examples after any recommended val/test carve-out."""
        n = self.data.n_train
        for key in ("val_size", "test_size"):
            if key in self.proposed:
                n -= _count(self.proposed[key], self.data.n_train)
        return max(1, n)

    @property
    def rows(self) -> int:
        return max(1, round(self.data.n_rows * self.n_train / max(1, self.data.n_train)))

    def plan_changed(self) -> bool:
        """Whether earlier rules changed what an epoch or a step is."""
        return any(k in self.proposed for k in ("per_device_train_batch_size", "gradient_accumulation_steps",
                                                 "num_train_epochs", "val_size", "test_size"))

    def steps(self) -> int:
        return total_steps(self.rows, self.get("per_device_train_batch_size"), self.get("gradient_accumulation_steps"),
                           self.get("num_train_epochs"), self.get("max_steps"))

    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.rows, self.get("per_device_train_batch_size"),
                               self.get("gradient_accumulation_steps"))


def _count(size: float, n: int) -> int:
    return int(size) if size >= 1 else int(round(size * n))


def _num(x: float) -> str:
    return f"{x:g}"


def rule_split(ctx: Context) -> list[Advice]:
    """A validation split shows over-fitting while training; a test split scores the result."""
    out = []
    for key, n, role in (("val_size", ctx.data.n_val, "validation"), ("test_size", ctx.data.n_test, "test")):
        if n:
            out.append(Advice(key, f"{n} examples", f"{n} examples", f"{role} split present", SOURCES["split"]))
            continue
        ctx.proposed[key] = 0.15
        why = ("no validation split: eval loss is never computed, so over-fitting goes unseen" if role == "validation"
               else "no test split: nothing held out to score base vs tuned after training")
        out.append(Advice(key, "missing", "0.15", why + " (7 : 1.5 : 1.5)", SOURCES["split"], "warn",
                          {key: 0.15}))
    return out


def rule_finetuning_type(ctx: Context) -> list[Advice]:
    ft = ctx.get("finetuning_type")
    if ft == "full" and ctx.n_train < 10_000:
        ctx.proposed["finetuning_type"] = "lora"
        why = f"{ctx.n_train} examples (< 10k): full tuning risks the base model's abilities; LoRA keeps them"
        return [Advice("finetuning_type", ft, "lora", why, SOURCES["lora_vs_full"], "warn",
                       {"finetuning_type": "lora"})]
    return [Advice("finetuning_type", ft, ft, "fits the data size", SOURCES["lora_vs_full"])]


def rule_learning_rate(ctx: Context) -> list[Advice]:
    lr, ft = ctx.get("learning_rate"), ctx.get("finetuning_type")
    if ft == "lora":
        lo, hi, rec, src, label = 5e-5, 1e-3, 2e-4, SOURCES["lr_lora"], "LoRA: 1e-4 to 5e-4"
    elif ft == "full":
        lo, hi, rec, src, label = 4e-6, 2e-5, 1e-5, SOURCES["lr_full"], "full tuning: 5e-6 to 1e-5"
    else:
        lo, hi, rec, src, label = 5e-6, 1e-4, 2e-5, SOURCES["lr_full"], "freeze: 5e-6 (full) up to 1e-4"
    if lo <= lr <= hi:
        return [Advice("learning_rate", _num(lr), _num(lr), f"within the range for {label}", src)]
    why = "too low: under-fits" if lr < lo else "too high: unstable, forgets the base model"
    ctx.proposed["learning_rate"] = rec
    return [Advice("learning_rate", _num(lr), _num(rec), f"{why} ({label})", src, "warn", {"learning_rate": rec})]


def recommended_epochs(n: int) -> int:
    """~5 epochs for 2k examples and ~2 for 20k (log-linear between and beyond), kept within 1-8."""
    return int(min(8, max(1, round(5 - 3 * math.log10(max(n, 1) / SMALL_DATA)))))


def rule_epochs(ctx: Context) -> list[Advice]:
    if ctx.get("max_steps") > 0:
        return [Advice("num_train_epochs", "max_steps set", "-", f"max_steps={ctx.get('max_steps')} overrides epochs",
                       SOURCES["epochs"], "info")]
    epochs, n = ctx.get("num_train_epochs"), ctx.n_train
    rec = recommended_epochs(n)
    if rec * 0.6 <= epochs <= rec * 1.6:
        return [Advice("num_train_epochs", _num(epochs), _num(epochs), f"suits {n} examples (~{rec})",
                       SOURCES["epochs"])]
    ctx.proposed["num_train_epochs"] = rec
    why = (f"{n} examples need more passes (~{rec}); watch eval loss for over-fitting" if epochs < rec else
           f"many epochs over-fit {n} examples (~{rec}); add more diverse data rather than epochs")
    return [Advice("num_train_epochs", _num(epochs), str(rec), why, SOURCES["epochs"], "warn",
                   {"num_train_epochs": rec})]


def rule_steps(ctx: Context) -> list[Advice]:
    t = ctx.cfg.train
    now = total_steps(ctx.data.n_rows, t.per_device_train_batch_size, t.gradient_accumulation_steps,
                      t.num_train_epochs, t.max_steps)
    current = f"{now} steps (batch {t.per_device_train_batch_size} x accum {t.gradient_accumulation_steps})"
    if t.max_steps > 0:
        level: Level = "ok" if now >= MIN_STEPS else "info"
        return [Advice("optimizer steps", current, current, "max_steps fixes the step count", SOURCES["steps"], level)]
    bs, ga = ctx.get("per_device_train_batch_size"), ctx.get("gradient_accumulation_steps")
    if ctx.steps() < MIN_STEPS:  # also short with the recommended epochs: smaller batches
        effective = max(1, int(ctx.rows * ctx.get("num_train_epochs") // MIN_STEPS))
        effective = 2 ** int(math.log2(effective))  # a power of two: friendlier to the hardware
        bs = min(bs, effective)
        ga = max(1, effective // bs)
        ctx.proposed.update(per_device_train_batch_size=bs, gradient_accumulation_steps=ga)
    planned = ctx.steps()
    rec = f"{planned} steps (batch {bs} x accum {ga})"
    if now >= MIN_STEPS and planned >= MIN_STEPS:
        return [Advice("optimizer steps", current, rec, f"at least {MIN_STEPS} steps", SOURCES["steps"])]
    why = f"fewer than {MIN_STEPS} optimizer steps"
    why += ": a smaller batch gives more updates" if bs < t.per_device_train_batch_size else " before the epoch change"
    if planned < MIN_STEPS:
        why += f"; even batch 1 gives only {planned} here, so more (diverse) data is the real fix"
    change = {k: v for k, v in (("per_device_train_batch_size", bs), ("gradient_accumulation_steps", ga))
              if v != ctx.cfg.flat()[k]}
    level = "warn" if now < MIN_STEPS else ("info" if change else "ok")
    return [Advice("optimizer steps", current, rec, why, SOURCES["steps"], level, change)]


def warmup_range(n: int) -> tuple[float, float]:
    if n < SMALL_DATA:
        return 0.10, 0.20
    if n > LARGE_DATA:
        return 0.02, 0.05
    return 0.05, 0.10


def rule_warmup(ctx: Context) -> list[Advice]:
    ratio, n = ctx.get("warmup_ratio"), ctx.n_train
    lo, hi = warmup_range(n)
    size = "small" if n < SMALL_DATA else ("large" if n > LARGE_DATA else "medium")
    label = f"{lo:.0%}-{hi:.0%} for {size} data ({n} examples)"
    if lo - 1e-9 <= ratio <= hi + 1e-9:
        return [Advice("warmup_ratio", _num(ratio), _num(ratio), label, SOURCES["warmup"])]
    rec = round((lo + hi) / 2, 3)
    ctx.proposed["warmup_ratio"] = rec
    return [Advice("warmup_ratio", _num(ratio), _num(rec), f"outside {label}", SOURCES["warmup"], "warn",
                   {"warmup_ratio": rec})]


def rule_eval(ctx: Context) -> list[Advice]:
    """10-20 evaluations per epoch, never every step, and never longer than the training itself."""
    has_val = ctx.data.n_val > 0 or "val_size" in ctx.proposed
    if not has_val:
        return [Advice("eval_steps", "-", "-", "no validation data, so no evaluation (see val_size)", SOURCES["eval"],
                       "info")]
    spe, total = ctx.steps_per_epoch(), ctx.steps()
    current = ctx.cfg.train.eval_steps or default_eval_steps(total)
    # 20 per epoch at most, but never every step ("不宜过频（如每步都验证）" wins over short epochs)
    most_often = max(2 if total > 2 else 1, math.ceil(spe / EVAL_PER_EPOCH[1]))
    least_often = max(most_often, spe // EVAL_PER_EPOCH[0])  # 10 per epoch
    # An evaluation reads the validation set forward only: ~1/2 of a LoRA training step's work per
    # token, ~1/3 of a full-tuning step's.
    forward_share = 1 / 3 if ctx.get("finetuning_type") == "full" else 1 / 2
    tokens_per_step = max(1.0, ctx.data.tokens_per_epoch / spe)
    eval_work = (ctx.data.val_tokens or ctx.data.tokens_per_epoch * 0.15) * forward_share
    cost_floor = max(1, math.ceil(eval_work / (MAX_EVAL_COST * tokens_per_step)))
    lower = max(most_often, cost_floor)
    upper = max(least_often, lower)

    def cost(steps: int) -> str:
        share = eval_work / (steps * tokens_per_step)
        return f" (evaluation ≈ {share:.0%} of training time)" if share > 0.25 else ""

    per_epoch = spe / current
    if lower <= current <= upper:
        return [Advice("eval_steps", str(current), str(current), f"{per_epoch:.1f} evaluations per epoch"
                       + cost(current), SOURCES["eval"])]
    if current == 1 and total > 1:
        problem = "every step: evaluation slows training a lot"
    elif current < most_often:
        problem = f"{per_epoch:.0f} times per epoch: too often"
    elif current < lower:
        problem = "evaluation would take longer than training itself"
    else:
        problem = f"{per_epoch:.1f} times per epoch: too rare to catch over-fitting in time"
    rec = min(upper, max(lower, round(spe / 15)))
    why = f"{problem}; the notes aim for {EVAL_PER_EPOCH[0]}-{EVAL_PER_EPOCH[1]} per epoch"
    if cost_floor > least_often:
        why += f", which this validation set's cost caps at {spe / lower:.0f}"
    if ctx.plan_changed():
        why = "with the recommended batch/epochs: " + why
    ctx.proposed["eval_steps"] = rec
    return [Advice("eval_steps", str(current), f"{rec} ({spe / rec:.1f}/epoch)", why + cost(rec), SOURCES["eval"],
                   "warn", {"eval_steps": rec})]


def rule_lora(ctx: Context) -> list[Advice]:
    if ctx.get("finetuning_type") != "lora":
        return []
    rank, alpha = ctx.get("lora_rank"), ctx.get("lora_alpha")
    out = []
    ratio = alpha / rank
    if 1 <= ratio <= 4:
        out.append(Advice("lora_alpha", str(alpha), str(alpha), f"alpha/rank = {ratio:g}, near 2", SOURCES["alpha"]))
    else:
        ctx.proposed["lora_alpha"] = 2 * rank
        out.append(Advice("lora_alpha", str(alpha), str(2 * rank), f"alpha/rank = {ratio:g} is far from 2",
                          SOURCES["alpha"], "warn", {"lora_alpha": 2 * rank}))
    if 4 <= rank <= 64:
        out.append(Advice("lora_rank", str(rank), str(rank), "in the common range 4-64", SOURCES["rank"]))
    else:
        rec = 8 if rank < 4 else 16
        out.append(Advice("lora_rank", str(rank), str(rec), "outside the common range 4-64; start at 8 or 16",
                          SOURCES["rank"], "info", {"lora_rank": rec, "lora_alpha": 2 * rec}))
    dropout = ctx.get("lora_dropout")
    if dropout > 0.2:
        out.append(Advice("lora_dropout", _num(dropout), "0.1", "above 0.2: too much regularization",
                          SOURCES["dropout"], "info", {"lora_dropout": 0.1}))
    else:
        out.append(Advice("lora_dropout", _num(dropout), _num(dropout), "0 for large data, up to 0.2 for small",
                          SOURCES["dropout"]))
    return out


def rule_regularization(ctx: Context) -> list[Advice]:
    out = []
    wd = ctx.get("weight_decay")
    if wd > 0.1:
        out.append(Advice("weight_decay", _num(wd), "0.05", "above 0.1: strong regularization under-fits",
                          SOURCES["weight_decay"], "warn", {"weight_decay": 0.05}))
    else:
        out.append(Advice("weight_decay", _num(wd), _num(wd),
                          "raise to 0.01-0.1 if train loss falls far below eval loss", SOURCES["weight_decay"]))
    sched = ctx.get("lr_scheduler_type")
    if sched.startswith("constant"):
        out.append(Advice("lr_scheduler_type", sched, "cosine", "a constant rate may not settle at the end",
                          SOURCES["scheduler"], "info", {"lr_scheduler_type": "cosine"}))
    else:
        out.append(Advice("lr_scheduler_type", sched, sched, "a decaying schedule", SOURCES["scheduler"]))
    return out


def rule_cutoff(ctx: Context) -> list[Advice]:
    cutoff, data = ctx.get("cutoff_len"), ctx.data
    limit = data.model_max_positions
    out = []
    if data.over_cutoff:
        rec = int(math.ceil(data.max_len / 64) * 64)
        if limit:
            rec = min(rec, limit)
        ctx.proposed["cutoff_len"] = rec
        shown = [f"{origin} ({n} tokens)" for origin, n in data.over_cutoff]
        out.append(Advice("cutoff_len", str(cutoff), str(rec),
                          f"{len(data.over_cutoff)} of {data.n_train} examples are longer and would be cut "
                          f"(longest {data.max_len} tokens)", SOURCES["cutoff"], "warn", {"cutoff_len": rec}, shown))
    else:
        out.append(Advice("cutoff_len", str(cutoff), str(cutoff),
                          f"cuts nothing (longest example {data.max_len} tokens)", SOURCES["cutoff"]))
    if limit and cutoff > limit and not ctx.get("rope_scaling"):
        rec = min(limit, ctx.proposed.get("cutoff_len", limit))
        ctx.proposed["cutoff_len"] = rec
        out.append(Advice("cutoff_len", str(cutoff), str(rec), f"beyond the model's pre-training length ({limit}); "
                          "to train that long, keep it and set rope_scaling: linear (or dynamic / yarn)",
                          SOURCES["cutoff_model"], "warn", {"cutoff_len": rec}))
    return out


def rule_data(ctx: Context) -> list[Advice]:
    data = ctx.data
    out = []
    if data.top_template_share > TEMPLATE_SHARE_LIMIT:
        out.append(Advice("instruction phrasing", f"{data.top_template_share:.0%} share one",
                          f"<= {TEMPLATE_SHARE_LIMIT:.0%}",
                          f"one phrasing dominates ({data.top_template[:40]!r}): the model learns the phrase, not the "
                          "task; vary it ('tunesmith data augment --paraphrase')", SOURCES["template"], "warn"))
    else:
        out.append(Advice("instruction phrasing", f"top {data.top_template_share:.0%}",
                          f"<= {TEMPLATE_SHARE_LIMIT:.0%}", f"{data.distinct_templates} distinct phrasings",
                          SOURCES["template"]))
    dups = data.exact_duplicates + data.near_duplicates
    if dups:
        out.append(Advice("duplicates", f"{data.exact_duplicates} exact, {data.near_duplicates} near", "0",
                          "repeats weigh some examples more than others; remove them ('tunesmith data dedupe')",
                          SOURCES["duplicates"], "warn", details=data.duplicate_examples))
    else:
        out.append(Advice("duplicates", "0", "0", "no exact or near duplicates", SOURCES["duplicates"]))
    if data.leaks:
        out.append(Advice("held-out leaks", f"{data.leaks} of {data.n_val + data.n_test}", "0",
                          "validation/test items also in training: their scores measure memory ('tunesmith data "
                          "overlap')", SOURCES["leak"], "warn", details=data.leak_examples))
    elif data.n_val + data.n_test:
        out.append(Advice("held-out leaks", "0", "0", "no validation/test item found in training", SOURCES["leak"]))
    if data.n_train < 1000:
        out.append(Advice("examples", str(data.n_train), ">= 1000", "a task is usually learned from a few thousand "
                          "high-quality examples; start small, then add", SOURCES["data_size"], "info"))
    return out


RULES: list[Callable[[Context], list[Advice]]] = [
    rule_split, rule_finetuning_type, rule_learning_rate, rule_epochs, rule_steps, rule_warmup, rule_eval,
    rule_lora, rule_regularization, rule_cutoff, rule_data,
]


def advise(cfg: Config, data: DataProfile) -> tuple[list[Advice], dict[str, Any]]:
    """Every rule's advice, and the config changes that make up the recommended config."""
    ctx = Context(cfg, data)
    rows: list[Advice] = []
    for rule in RULES:
        rows += rule(ctx)
    changes: dict[str, Any] = {}
    for row in rows:
        changes.update(row.change)
    return rows, changes
