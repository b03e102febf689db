"""The one typed config tree.

Users write flat keys (as in LLaMA-Factory: ``learning_rate: 1e-4``); internally each key belongs to
exactly one group (model, data, finetune, train, eval, export, serve). Each field's help text is
written once here, in English (``description``) and Chinese (``zh``), and reused by the CLI, the
advisor and the web UI.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_MODEL = "gemma-3-270m"
TRACKERS = ("auto", "none", "tensorboard", "mlflow", "wandb", "swanlab")


def _f(default: Any, en: str, zh: str, **kw: Any) -> Any:
    """A field with help text in English and Chinese."""
    extra = kw.pop("json_schema_extra", {}) or {}
    extra["zh"] = zh
    return Field(default, description=en, json_schema_extra=extra, **kw)


class _Group(BaseModel):
    # nan / inf are never meaningful settings (`learning_rate: .nan` must fail, not train on nothing)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ModelArgs(_Group):
    """Which model to start from and how to load it."""

    model_name_or_path: str = _f(
        DEFAULT_MODEL,
        "Base model: 'gemma-3-270m' (bundled, works offline), a local Hugging Face folder, a .gguf "
        "file, or a hub id (needs network).",
        "基座模型：'gemma-3-270m'（内置，可离线）、本地 Hugging Face 目录、.gguf 文件或 Hub 模型名（需联网）。",
    )
    adapter_name_or_path: str | None = _f(
        None,
        "A trained LoRA adapter folder (or a run's output_dir) to load on top of the base model.",
        "在基座模型之上加载的 LoRA 适配器目录（或一次训练的 output_dir）。",
    )
    template: str = _f(
        "auto",
        "Chat template: auto (the model's own chat template, else by model type), or a built-in: qwen (2.5), qwen2, "
        "qwen3, deepseek-r1, llama3, llama3.1, mistral, phi3, phi4-mini, phi4, glm4, gemma, chatml, default. The "
        "same one is used for training, evaluation, chat and export.",
        "对话模板：auto（模型自带的 chat template，没有则按模型类型选择），或内置模板：qwen（2.5）、qwen2、qwen3、"
        "deepseek-r1、llama3、llama3.1、mistral、phi3、phi4-mini、phi4、glm4、gemma、chatml、default。"
        "训练、评估、对话与导出使用同一个模板。",
    )
    trust_remote_code: bool = _f(
        False,
        "Allow running code shipped with a hub model. Off unless you trust the model's authors.",
        "允许执行模型仓库自带的代码。除非信任模型作者，否则保持关闭。",
    )
    rope_scaling: Literal["linear", "dynamic", "yarn"] | None = _f(
        None, "Stretch RoPE positions to train or run past the model's max_position_embeddings: linear, "
        "dynamic (NTK) or yarn, by ceil(cutoff_len / max_position_embeddings).",
        "拉伸 RoPE 位置以超出模型的 max_position_embeddings 进行训练或推理：linear、dynamic（NTK）或 yarn，"
        "倍数为 ceil(cutoff_len / max_position_embeddings)。",
    )
    cache_dir: str | None = _f(
        None,
        "Where converted models are cached (default: $TUNESMITH_CACHE or ~/.cache/tunesmith).",
        "转换后模型的缓存目录（默认 $TUNESMITH_CACHE 或 ~/.cache/tunesmith）。",
    )


class DataArgs(_Group):
    """Which data to train on and how to cut it."""

    dataset: list[str] = _f(
        [],
        "Dataset names from dataset_dir/dataset_info.json, or file paths; comma-separated or a list.",
        "数据集名称（来自 dataset_dir/dataset_info.json）或文件路径；用逗号分隔或写成列表。",
    )
    dataset_dir: str = _f(
        "data",
        "Folder holding dataset_info.json and the data files (relative to the config file).",
        "存放 dataset_info.json 和数据文件的目录（相对于配置文件）。",
    )
    eval_dataset: list[str] = _f(
        [],
        "Separate validation datasets; if empty, val_size of the training data is held out.",
        "单独的验证集；为空时从训练数据中按 val_size 划出。",
    )
    test_dataset: list[str] = _f(
        [],
        "Held-out test datasets, scored after training (base vs tuned) and by 'tunesmith eval'.",
        "留出的测试集：训练结束后比较基座与微调模型，也供 'tunesmith eval' 使用。",
    )
    test_size: float = _f(
        0.0,
        "Share (0-1) or count (>=1) of training examples held out for testing when no test_dataset is given.",
        "未提供 test_dataset 时，从训练数据中划出的测试集比例（0-1）或条数（>=1）。",
        ge=0.0,
    )
    cutoff_len: int = _f(
        1024,
        "Maximum tokens per example. Longer examples are reported by 'data check' and cut (prompt first).",
        "每条样本的最大 token 数。超长样本会在 'data check' 中报告，并优先截断提示部分。",
        ge=8,
    )
    max_samples: int | None = _f(
        None,
        "Use at most this many examples per dataset (for quick tries).",
        "每个数据集最多使用的样本数（快速试验用）。",
        ge=1,
    )
    val_size: float = _f(
        0.0,
        "Share (0-1) or count (>=1) of training examples held out for validation.",
        "从训练数据中划出的验证集比例（0-1）或条数（>=1）。",
        ge=0.0,
    )
    train_on_prompt: bool = _f(
        False,
        "Also put loss on the prompt/user tokens (normally only assistant replies carry loss).",
        "提示/用户部分也计算损失（通常只对助手回复计算）。",
    )
    mask_history: bool = _f(
        False,
        "In multi-turn data, train only on the last assistant turn.",
        "多轮对话中只训练最后一轮助手回复。",
    )
    enable_thinking: bool = _f(
        True,
        "Reasoning templates (qwen3): true lets the model think; a reply without reasoning is trained with an "
        "empty <think></think> block. false puts that empty block into every prompt (Qwen3's enable_thinking=false).",
        "推理模板（qwen3）：true 允许模型思考，没有推理过程的回复以空的 <think></think> 块训练；"
        "false 则把空块放进每个提示（即 Qwen3 的 enable_thinking=false）。",
    )
    packing: bool | None = _f(
        None,
        "Pack several examples into one sequence without attention across them (default: on for pt).",
        "把多条样本拼接成一条序列（样本之间不互相注意；pt 阶段默认开启）。",
    )
    media_dir: str | None = _f(
        None,
        "Folder that relative image / video paths in the data are under (default: beside the dataset file).",
        "数据中图片 / 视频相对路径所在的目录（默认：数据文件所在目录）。",
    )
    image_folder: str | None = _f(
        None,
        "Qwen2-VL-Finetune's name for media_dir (set one of the two).",
        "media_dir 在 Qwen2-VL-Finetune 中的名称（二者设置其一）。",
    )
    image_min_pixels: int | None = _f(
        None,
        "Vision models: images with fewer pixels are scaled up to this many (the processor's min_pixels; "
        "default: the model's own, 56x56 for Qwen2-VL).",
        "视觉模型：像素少于此值的图片放大到该像素数（处理器的 min_pixels；默认取模型自带值，Qwen2-VL 为 56x56）。",
        ge=1,
    )
    image_max_pixels: int | None = _f(
        None,
        "Vision models: larger images are scaled down to this many pixels (the processor's max_pixels); fewer "
        "pixels give fewer vision tokens. Qwen2-VL: one token per 28x28 pixels (e.g. 262144 = 512x512 -> ~334 tokens).",
        "视觉模型：更大的图片缩小到该像素数（处理器的 max_pixels）；像素越少视觉 token 越少。"
        "Qwen2-VL 每 28x28 像素一个 token（如 262144 = 512x512 约 334 个 token）。",
        ge=1,
    )
    video_fps: float | None = _f(
        None, "Vision models: frames sampled per second of video (the video processor's fps).",
        "视觉模型：每秒视频采样的帧数（视频处理器的 fps）。", gt=0,
    )
    video_maxlen: int | None = _f(
        None, "Vision models: most frames sampled from one video (the video processor's max_frames).",
        "视觉模型：每个视频最多采样的帧数（视频处理器的 max_frames）。", ge=1,
    )
    replay: float = _f(
        0.0,
        "Multi-stage: share of the previous stage's data mixed back in (e.g. 0.2) against forgetting.",
        "多阶段训练：混入上一阶段数据的比例（如 0.2），防止遗忘。",
        ge=0.0,
        le=1.0,
    )
    replay_dataset: list[str] = _f(
        [],
        "Datasets to draw replay examples from; default: the earlier stages' (or the continued run's) training data.",
        "用于抽取回放样本的数据集；默认使用前面各阶段（或被继续训练的那次运行）的训练数据。",
    )

    @model_validator(mode="after")
    def _one_media_folder(self) -> DataArgs:
        if self.media_dir and self.image_folder and self.media_dir != self.image_folder:
            raise ValueError(f"media_dir={self.media_dir!r} and image_folder={self.image_folder!r} name the same "
                             "setting; keep one")
        return self

    @property
    def media_folder(self) -> str | None:
        """The folder relative media paths are under (media_dir or image_folder)."""
        return self.media_dir or self.image_folder

    @field_validator("dataset", "eval_dataset", "test_dataset", "replay_dataset", mode="before")
    @classmethod
    def _split_commas(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):
            return [s.strip() for s in v.split(",") if s.strip()]
        return v


class FinetuneArgs(_Group):
    """What kind of training: stage and which parameters move."""

    stage: Literal["pt", "sft", "rm", "dpo", "kto", "orpo", "simpo", "grpo"] = _f(
        "sft",
        "Training stage: pt (pre-training on text), sft (instruction tuning), rm (reward model), dpo, "
        "kto, orpo, simpo (preference learning), grpo (reinforcement learning with reward functions).",
        "训练阶段：pt（预训练）、sft（指令监督微调）、rm（奖励模型）、dpo/kto/orpo/simpo（偏好学习）、grpo（基于奖励函数的强化学习）。",
    )
    finetuning_type: Literal["lora", "full", "freeze"] = _f(
        "lora",
        "lora: small low-rank matrices beside frozen weights (fast, light); full: all weights; "
        "freeze: only the last freeze_trainable_layers layers.",
        "lora：在冻结权重旁加低秩矩阵（快、省内存）；full：全参数；freeze：只训练最后几层。",
    )
    lora_rank: int = _f(8, "LoRA rank r: 8 or 16 suits most tasks; 4 for tiny data, 32-64 for hard ones.",
                        "LoRA 秩 r：多数任务用 8 或 16；数据很少用 4，复杂任务用 32-64。", ge=1, le=4096)
    lora_alpha: int | None = _f(
        None, "LoRA alpha (scale); default 2 x lora_rank, the rule of thumb from the notes.",
        "LoRA alpha（缩放系数）；默认为 2 × lora_rank（经验法则）。", ge=1,
    )
    lora_dropout: float = _f(0.0, "Dropout on LoRA layers: 0 for large data, 0.05-0.2 for small data.",
                             "LoRA 丢弃率：数据多时为 0，数据少易过拟合时 0.05-0.2。", ge=0.0, lt=1.0)
    lora_target: list[str] = _f(
        ["all"],
        "Modules that get LoRA: 'all' (every linear layer) or names such as q_proj,v_proj.",
        "添加 LoRA 的模块：'all'（所有线性层）或 q_proj,v_proj 等名称。",
    )
    use_rslora: bool = _f(False, "Rank-stabilized LoRA (scale alpha/sqrt(r)): steadier at high ranks.",
                          "秩稳定 LoRA（缩放 alpha/sqrt(r)）：高秩时更稳定。")
    use_dora: bool = _f(False, "DoRA: weight-decomposed LoRA (slower per step, sometimes better).",
                        "DoRA：权重分解的 LoRA（每步更慢，有时效果更好）。")
    quantization_bit: Literal[4, 8] | None = _f(
        None, "QLoRA: load the frozen base in 4 or 8 bits (bitsandbytes) and train LoRA on top; merging goes "
        "into the unquantized base. Needs finetuning_type lora and the 'qlora' extra.",
        "QLoRA：以 4 或 8 比特（bitsandbytes）加载冻结的基座并在其上训练 LoRA；合并时并入未量化的基座。"
        "需 finetuning_type lora 与 'qlora' 依赖。",
    )
    quantization_type: Literal["nf4", "fp4"] = _f("nf4", "4-bit data type: nf4 (QLoRA's, best) or fp4.",
                                                  "4 比特数据类型：nf4（QLoRA 使用，效果最好）或 fp4。")
    double_quantization: bool = _f(True, "4-bit: also quantize the quantization constants (~0.4 bit/weight less).",
                                   "4 比特：对量化常数再做一次量化（每个权重约省 0.4 比特）。")
    init_lora_weights: Literal["default", "gaussian", "pissa", "olora", "loftq"] = _f(
        "default", "LoRA initialization (peft's init_lora_weights): default (B = 0), gaussian, pissa (principal "
        "singular vectors; the base keeps the residual), olora (QR-orthonormal), loftq (quantization-aware, "
        "for quantization_bit 4).",
        "LoRA 初始化（peft 的 init_lora_weights）：default（B = 0）、gaussian、pissa（主奇异向量，基座保留残差）、"
        "olora（QR 正交）、loftq（量化感知，配合 quantization_bit 4）。",
    )
    pissa_init: bool = _f(False, "LLaMA-Factory's spelling of init_lora_weights: pissa.",
                          "LLaMA-Factory 的写法，等同 init_lora_weights: pissa。")
    pissa_iter: int = _f(16, "PiSSA: fast-SVD iterations (-1: exact SVD).",
                         "PiSSA：快速 SVD 的迭代次数（-1 为精确 SVD）。", ge=-1)
    loraplus_lr_ratio: float | None = _f(
        None, "LoRA+: the B matrices learn this many times faster than A (the paper suggests 16).",
        "LoRA+：B 矩阵的学习率是 A 的多少倍（论文建议 16）。", gt=0.0,
    )
    loraplus_lr_embedding: float = _f(1e-6, "LoRA+: learning rate of LoRA on embedding layers.",
                                      "LoRA+：嵌入层上 LoRA 的学习率。", gt=0.0)
    additional_target: list[str] = _f(
        [], "Modules trained in full beside LoRA (peft's modules_to_save), e.g. embed_tokens,lm_head with "
        "new_special_tokens.",
        "在 LoRA 之外整体训练的模块（peft 的 modules_to_save），如配合 new_special_tokens 的 embed_tokens,lm_head。",
    )
    new_special_tokens: list[str] = _f(
        [], "Special tokens to add to the tokenizer (comma-separated); the embeddings are resized and the new "
        "rows start at the mean embedding.",
        "加入分词器的特殊 token（逗号分隔）；嵌入层随之扩展，新行初始化为平均嵌入。",
    )

    @field_validator("additional_target", "new_special_tokens", mode="before")
    @classmethod
    def _split_names(cls, v: Any) -> Any:
        if v is None:
            return []
        return [s.strip() for s in v.split(",") if s.strip()] if isinstance(v, str) else v

    freeze_vision_tower: bool = _f(
        True, "Vision models: keep the vision encoder frozen; false trains it too (LoRA on its linear layers with "
        "finetuning_type lora, all its weights with full).",
        "视觉模型：冻结视觉编码器；false 时一并训练（lora 时在其线性层上加 LoRA，full 时训练全部权重）。",
    )
    freeze_multi_modal_projector: bool = _f(
        True, "Vision models: keep the projector (Qwen2-VL's merger) between vision encoder and language model "
        "frozen; false trains all its weights.",
        "视觉模型：冻结视觉编码器与语言模型之间的投影层（Qwen2-VL 的 merger）；false 时训练其全部权重。",
    )
    vision_lr: float | None = _f(
        None, "Vision models: learning rate of the vision encoder's trained weights (default: learning_rate).",
        "视觉模型：视觉编码器可训练权重的学习率（默认同 learning_rate）。", gt=0.0, le=1.0,
    )
    merger_lr: float | None = _f(
        None, "Vision models: learning rate of the projector / merger (default: learning_rate).",
        "视觉模型：投影层 / merger 的学习率（默认同 learning_rate）。", gt=0.0, le=1.0,
    )
    freeze_trainable_layers: int = _f(2, "freeze tuning: how many of the last layers train.",
                                      "freeze 微调：训练最后多少层。", ge=1)
    pref_beta: float = _f(0.1, "Preference stages: beta, how far the model may move from the reference.",
                          "偏好训练：beta，模型偏离参考模型的程度。", gt=0.0)
    pref_loss: Literal["sigmoid", "ipo", "hinge", "simpo", "orpo"] = _f(
        "sigmoid", "DPO loss variant: sigmoid (DPO), ipo, hinge, simpo, orpo.",
        "DPO 损失类型：sigmoid（DPO）、ipo、hinge、simpo、orpo。",
    )
    reward_funcs: list[str] = _f(
        [],
        "GRPO rewards: built-in names (exact_match, format:REGEX, length) or 'module:function'.",
        "GRPO 奖励函数：内置名称（exact_match、format:正则、length）或 'module:function'。",
    )
    num_generations: int = _f(4, "GRPO: completions sampled per prompt.", "GRPO：每个提示采样的回答数。", ge=2)
    max_completion_length: int = _f(
        32, "GRPO: most tokens per sampled answer; keep it small on a CPU (generation dominates the time).",
        "GRPO：每个采样回答的最大 token 数；CPU 上宜小（生成占大部分时间）。", ge=1,
    )
    grpo_temperature: float = _f(
        1.0, "GRPO: sampling temperature; must be > 0 so the answers to one prompt differ.",
        "GRPO：采样温度；须大于 0，同一提示的多个回答才会不同。", gt=0.0,
    )
    simpo_gamma: float = _f(0.5, "SimPO: target reward margin between chosen and rejected answers.",
                            "SimPO：选中与拒绝回答之间的目标奖励差。", ge=0.0)
    stage_lr_scale: float = _f(
        0.5,
        "Multi-stage: a later stage without its own learning_rate uses the previous stage's times this "
        "(the notes: 1e-5, then 5e-6).",
        "多阶段训练：后续阶段未设置 learning_rate 时，使用上一阶段学习率乘以该值（笔记建议：1e-5 之后用 5e-6）。",
        gt=0.0, le=1.0,
    )


class TrainArgs(_Group):
    """How the optimizer runs: the hyper-parameters the notes discuss."""

    output_dir: str = _f("saves/run", "Where the adapter/model, checkpoints, logs and plots go.",
                         "保存适配器/模型、检查点、日志和曲线图的目录。")
    overwrite_output_dir: bool = _f(False, "Allow writing into a non-empty output_dir.",
                                    "允许写入非空的 output_dir。")
    learning_rate: float = _f(
        1e-4,
        "Peak learning rate. LoRA: 1e-4 to 5e-4; full fine-tuning: 5e-6 to 1e-5 (the notes' range).",
        "峰值学习率。LoRA：1e-4 至 5e-4；全参数微调：5e-6 至 1e-5。",
        gt=0.0,
        le=1.0,
    )
    num_train_epochs: float = _f(3.0, "Passes over the data. ~5 for 2k examples, ~2 for 20k; prefer more "
                                 "diverse data over more epochs.",
                                 "训练轮数。约 2 千条数据 5 轮、2 万条 2 轮；效果不好时优先增加数据多样性。", gt=0.0,
                                 le=10000)
    max_steps: int = _f(-1, "Stop after this many optimizer steps (overrides epochs when > 0).",
                        "最多训练的优化步数（大于 0 时覆盖轮数）。")
    per_device_train_batch_size: int = _f(4, "Examples per forward pass.", "每次前向传播的样本数。", ge=1)
    per_device_eval_batch_size: int = _f(8, "Examples per evaluation/generation batch.", "评估/生成时的批大小。", ge=1)
    gradient_accumulation_steps: int = _f(
        1, "Forward passes per optimizer step; effective batch = batch size x this.",
        "每次参数更新前累积的前向次数；有效批大小 = 批大小 × 此值。", ge=1,
    )
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = _f(
        "cosine", "Learning-rate schedule: cosine or linear decay are the stable choices.",
        "学习率调度：余弦或线性衰减最常用且稳定。",
    )
    warmup_ratio: float = _f(0.1, "Share of steps that warm up the learning rate: 0.05-0.1; 0.1-0.2 for small data.",
                             "学习率预热步数占比：0.05-0.1；小数据 0.1-0.2。", ge=0.0, lt=1.0)
    weight_decay: float = _f(0.0, "L2 regularization strength; 0.01-0.1 if train loss is far below eval loss.",
                             "权重衰减（L2 正则）；训练损失远低于验证损失时设 0.01-0.1。", ge=0.0)
    max_grad_norm: float = _f(1.0, "Clip gradients above this norm (guards against exploding gradients).",
                              "梯度裁剪阈值（防止梯度爆炸）。", gt=0.0)
    logging_steps: int = _f(5, "Log loss every N optimizer steps.", "每 N 步记录一次损失。", ge=1)
    eval_steps: int | None = _f(None,
                                "Evaluate every N steps (default: ~10 times per run when a validation split exists).",
                                "每 N 步验证一次（默认：有验证集时每次训练约验证 10 次）。", ge=1)
    save_steps: int = _f(500, "Save a checkpoint every N steps (resume from it with resume_from_checkpoint).",
                         "每 N 步保存检查点（可用 resume_from_checkpoint 续训）。", ge=1)
    save_total_limit: int | None = _f(3, "Keep at most this many checkpoints.", "最多保留的检查点数量。", ge=1)
    bf16: bool | None = _f(None, "bf16 compute: auto-detected (on for AVX-512-BF16/AMX CPUs and bf16 GPUs).",
                           "bf16 计算：自动检测（支持 AVX-512-BF16/AMX 的 CPU 与支持 bf16 的 GPU 默认开启）。")
    seed: int = _f(42, "Random seed for shuffling, splits and initialization.", "随机种子（打乱、划分与初始化）。")
    resume_from_checkpoint: str | None = _f(
        None, "Resume an interrupted run: a checkpoint folder, or 'last' for the newest in output_dir.",
        "从中断处续训：检查点目录，或 'last' 表示 output_dir 中最新的检查点。",
    )
    continue_from: str | None = _f(
        None, "Start from a finished run's adapter or weights (a run's output_dir) and train further.",
        "从一次已完成训练的结果（其 output_dir）继续训练。",
    )
    lr_schedule: Literal["restart", "continue"] = _f(
        "restart", "With continue_from: restart the LR schedule, or continue where the earlier run ended.",
        "使用 continue_from 时：重新开始学习率调度，或接着上次结束处继续。",
    )
    plot_loss: bool = _f(True, "Write a loss-curve PNG (train and eval) at the end.", "训练结束时保存损失曲线图。")
    gradient_checkpointing: bool = _f(False, "Recompute activations in backward: less memory, ~30% slower.",
                                      "反向传播时重算激活：省内存，约慢 30%。")
    neftune_noise_alpha: float | None = _f(
        None, "NEFTune: uniform noise of this scale (alpha / sqrt(length x hidden)) on the input embeddings "
        "while training; 5 is the paper's value.",
        "NEFTune：训练时在输入嵌入上加入该尺度的均匀噪声（alpha / sqrt(长度 × 隐藏维度)）；论文取 5。", gt=0.0,
    )
    fast_path: bool = _f(
        True,
        "Use tunesmith's fast loss (output layer only at labelled positions, chunked) with padding "
        "removed by packing; same batches and loss as the standard path. Turn off only to compare.",
        "使用 tunesmith 的快速路径（只在有标签的位置计算输出层、分块计算，打包去除填充）；"
        "批次与损失与标准路径相同。仅在对比时关闭。",
    )
    torch_compile: bool | None = _f(
        None,
        "Compile the decoder layers with torch.compile (fuses small ops; ~25% faster steps here, but "
        "~40 s to compile the first time, ~8 s once cached). Default: on when the run is long enough.",
        "用 torch.compile 编译解码层（融合小算子；本机每步快约 25%，但首次编译约 40 秒，缓存后约 8 秒）。"
        "默认：训练量足够大时自动开启。",
    )
    num_threads: int | None = _f(None, "CPU threads for torch (default: all usable cores).",
                                 "torch 使用的 CPU 线程数（默认：全部可用核心）。", ge=1)
    report_summary: bool = _f(True, "After training, score base vs tuned on the held-out split.",
                              "训练后在留出集上比较基座与微调模型。")
    report_to: list[str] = _f(
        ["auto"],
        "Experiment trackers, each through its own library: tensorboard, mlflow, wandb, swanlab, none, or a "
        "list. auto: tensorboard (event files in output_dir/runs) when it is installed. train_log.jsonl and "
        "loss.png are written either way.",
        "实验跟踪工具（各用其自身的库）：tensorboard、mlflow、wandb、swanlab、none，或其列表。auto：已安装 "
        "tensorboard 时使用它（事件文件在 output_dir/runs）。train_log.jsonl 和 loss.png 始终照常写入。",
    )

    @field_validator("report_to", mode="before")
    @classmethod
    def _split_trackers(cls, v: Any) -> Any:
        if v is None:
            return ["none"]
        if isinstance(v, str):
            return [s.strip() for s in v.split(",") if s.strip()] or ["none"]
        return v

    @field_validator("report_to")
    @classmethod
    def _known_trackers(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if t not in TRACKERS]
        if bad:
            raise ValueError(f"unknown tracker(s) {bad}; choose from {', '.join(TRACKERS)}")
        if len(v) > 1 and ({"none", "auto"} & set(v)):
            raise ValueError("'none' and 'auto' cannot be combined with other trackers")
        return v


class DistributedArgs(_Group):
    """More than one process: devices, nodes and sharding engines, handed to torchrun / accelerate."""

    nproc_per_node: int | None = _f(
        None, "Processes per node, one per device (default: $NPROC_PER_NODE, else one per visible CUDA GPU; 1 on "
        "a CPU machine, where more need TUNESMITH_FORCE_LAUNCHER=1).",
        "每个节点的进程数（每个设备一个；默认取 $NPROC_PER_NODE，否则每张可见 CUDA GPU 一个；CPU 机器上为 1，"
        "多于 1 需设置 TUNESMITH_FORCE_LAUNCHER=1）。", ge=1,
    )
    nnodes: int | None = _f(None, "Number of machines (default: $NNODES, else 1).",
                            "机器数（默认取 $NNODES，否则为 1）。", ge=1)
    node_rank: int | None = _f(None, "This machine's index, 0 to nnodes-1 (default: $NODE_RANK, else 0).",
                               "本机序号，0 到 nnodes-1（默认取 $NODE_RANK，否则为 0）。", ge=0)
    master_addr: str | None = _f(None, "Address of node 0 (default: $MASTER_ADDR, else 127.0.0.1).",
                                 "0 号节点的地址（默认取 $MASTER_ADDR，否则为 127.0.0.1）。")
    master_port: int | None = _f(
        None, "Port on node 0 (default: $MASTER_PORT, else 29500 with several nodes, a free port on one).",
        "0 号节点的端口（默认取 $MASTER_PORT；多节点时为 29500，单节点时取一个空闲端口）。", ge=1, le=65535,
    )
    launcher: Literal["torchrun", "accelerate"] = _f(
        "torchrun", "Which launcher runs the processes: torchrun or accelerate launch.",
        "由哪个启动器运行多进程：torchrun 或 accelerate launch。",
    )
    ddp_timeout: int = _f(1800, "Seconds a process waits for the others in a collective before the job fails.",
                          "进程在集合通信中等待其他进程的秒数，超时则任务失败。", ge=1)
    deepspeed: str | None = _f(
        None, "DeepSpeed ZeRO: a shipped preset (z2, z3, z3_offload) or a DeepSpeed JSON file; needs "
        "tunesmith[deepspeed].",
        "DeepSpeed ZeRO：内置预设（z2、z3、z3_offload）或 DeepSpeed JSON 文件；需要 tunesmith[deepspeed]。",
    )
    fsdp: str | None = _f(
        None, "PyTorch FSDP2 through the Trainer: full_shard or shard_grad_op, optionally followed by offload "
        "(e.g. 'full_shard offload'); wraps each decoder layer.",
        "通过 Trainer 使用 PyTorch FSDP2：full_shard 或 shard_grad_op，可加 offload（如 'full_shard offload'）；"
        "按解码层包装。",
    )


class EvalArgs(_Group):
    """Generation and scoring settings, shared by eval, chat and serve."""

    max_new_tokens: int = _f(128, "Most tokens generated per answer.", "每个回答最多生成的 token 数。", ge=1)
    temperature: float = _f(0.0, "Sampling temperature; 0 means greedy (deterministic).",
                            "采样温度；0 表示贪心解码（确定性）。", ge=0.0)
    top_p: float = _f(1.0, "Nucleus sampling: keep the smallest set of tokens with this total probability.",
                      "核采样：保留累计概率达到该值的最小 token 集合。", gt=0.0, le=1.0)
    top_k: int = _f(0, "Sample only among the k most likely tokens (0 = no limit).",
                    "只在概率最高的 k 个 token 中采样（0 表示不限）。", ge=0)
    repetition_penalty: float = _f(1.0, "Penalty > 1 discourages repeating tokens.", "大于 1 时抑制重复。", gt=0.0)
    eval_split: Literal["val", "test", "train"] = _f("test", "Which split 'eval' scores.", "'eval' 评估哪个划分。")
    eval_samples: int | None = _f(None, "Score at most this many examples.", "最多评估的样本数。", ge=1)
    eval_output_dir: str | None = _f(
        None,
        "Where 'eval' writes predictions.jsonl, metrics.json and reports (default: the evaluated run's "
        "folder + /eval, or output_dir/eval for a model without adapter).",
        "'eval' 写入 predictions.jsonl、metrics.json 和报告的目录（默认：被评估运行目录下的 eval，"
        "无适配器时为 output_dir/eval）。",
    )
    n_shot: int = _f(
        0, "Multiple-choice benchmarks: solved examples shown before each question (0 = zero-shot), taken "
        "from the subject's dev file.",
        "选择题基准：每题之前给出的已解答示例数（0 为零样本），取自该学科的 dev 文件。", ge=0,
    )
    judge_endpoint: str | None = _f(
        None, "LLM-as-judge: an OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 ('tunesmith serve', "
        "vLLM, Ollama, a cloud API).",
        "LLM 评审：OpenAI 兼容接口的基础地址，如 http://127.0.0.1:8000/v1"
        "（tunesmith serve、vLLM、Ollama 或云端 API）。",
    )
    judge_model: str | None = _f(None, "LLM-as-judge: the model name to ask at judge_endpoint.",
                                 "LLM 评审：在 judge_endpoint 上调用的模型名称。")
    judge_api_key: str | None = _f(None, "LLM-as-judge: API key (default: $OPENAI_API_KEY, or none).",
                                   "LLM 评审：API 密钥（默认取 $OPENAI_API_KEY，或不使用）。")
    judge_rubric: str | None = _f(
        None, "LLM-as-judge: a text file with your scoring rubric (default: correctness, completeness, style).",
        "LLM 评审：评分标准文本文件（默认：正确性、完整性、表达风格）。",
    )


class ExportArgs(_Group):
    """Where and how a merged / quantized model is written."""

    export_dir: str | None = _f(
        None, "Folder for the merged (and quantized) model: a new or empty folder, or an earlier export "
        "(with overwrite_export_dir). Never the adapter, the base model, a training run or the current directory.",
        "合并（及量化）后模型的目录：新的或空的目录，或之前的导出（需 overwrite_export_dir）。"
        "不能是适配器、基座模型、训练运行目录或当前目录。",
    )
    overwrite_export_dir: bool = _f(
        False, "Replace an earlier tunesmith export in export_dir (kept until the new one passed its checks).",
        "替换 export_dir 中之前的 tunesmith 导出（新导出通过检查前保留旧的）。",
    )
    export_size: float = _f(5, "Shard size in GB for safetensors files.", "safetensors 分片大小（GB）。", gt=0)
    export_quantization: Literal["none", "int8", "gguf-f16", "gguf-q8_0", "gguf-q4_k_m", "gguf-q5_k_m", "gguf-q6_k",
                                 "gptq-int4", "awq-int4"] = _f(
        "none", "Quantize on export: int8 (CPU weight-only, torchao), gguf-f16 or gguf-q8_0 (llama.cpp), "
        "gguf-q4_k_m / gguf-q5_k_m / gguf-q6_k (llama.cpp's own quantizer; needs llama-cpp-python), "
        "gptq-int4 or awq-int4 (GPU engines such as vLLM; need a CUDA GPU and gptqmodel / llmcompressor).",
        "导出时量化：int8（CPU 仅权重量化，torchao）、gguf-f16 或 gguf-q8_0（llama.cpp）、"
        "gguf-q4_k_m / gguf-q5_k_m / gguf-q6_k（llama.cpp 自带量化器；需安装 llama-cpp-python）、gptq-int4 或 awq-int4"
        "（vLLM 等 GPU 推理引擎；需要 CUDA GPU 及 gptqmodel / llmcompressor）。",
    )
    export_check_prompts: list[str] = _f(
        [],
        "Held-out prompts for the after-export parity checks (default: the run's test split, else built-in ones).",
        "导出后一致性检查使用的留出提示（默认取训练的测试集，否则使用内置提示）。",
    )
    export_check_samples: int = _f(4, "How many held-out prompts the parity checks use.",
                                   "一致性检查使用的留出提示数量。", ge=1)
    export_check_tokens: int = _f(24, "Greedy tokens generated per prompt in the parity checks.",
                                  "一致性检查中每个提示贪心生成的 token 数。", ge=1)
    export_min_agreement: float = _f(
        0.9, "Quantized artifacts must agree with base + adapter on at least this share of next tokens.",
        "量化产物的下一个 token 与基座 + 适配器一致的比例下限。", ge=0.0, le=1.0,
    )

    @field_validator("export_check_prompts", mode="before")
    @classmethod
    def _one_prompt(cls, v: Any) -> Any:
        if v is None:
            return []
        return [v] if isinstance(v, str) else v


class ServeArgs(_Group):
    """The OpenAI-compatible API server."""

    host: str = _f("127.0.0.1", "Address to bind; 127.0.0.1 keeps the server local.",
                   "绑定地址；127.0.0.1 只允许本机访问。")
    port: int = _f(8000, "Port for the API server.", "API 服务端口。", ge=1, le=65535)
    api_key: str | None = _f(None, "If set, clients must send 'Authorization: Bearer <key>'.",
                             "设置后客户端须携带 'Authorization: Bearer <key>'。")
    adapters: list[str] = _f(
        [],
        "LoRA adapters served on one base, as name=path (comma-separated or a list); a request picks one by "
        "its 'model' name.",
        "在同一基座上提供的多个 LoRA 适配器，格式 name=path（逗号分隔或列表）；请求通过 'model' 名称选择。",
    )
    served_model_name: str | None = _f(None, "Name of the base model in /v1/models (default: the folder name).",
                                       "基座模型在 /v1/models 中的名称（默认：目录名）。")
    max_batch_size: int = _f(8, "Most requests generated together in one batch.", "一个批次中同时生成的最多请求数。",
                             ge=1)
    max_request_kb: int = _f(512, "Largest accepted request body in KB.", "允许的最大请求体（KB）。", ge=1)
    serve_backend: Literal["auto", "transformers", "vllm", "llama.cpp"] = _f(
        "auto", "Inference backend of serve and chat: auto (vLLM for the API on a CUDA GPU when installed; llama.cpp "
        "when the model is a .gguf file and llama-cpp-python is installed; else transformers), transformers, vllm, "
        "llama.cpp (a .gguf file or an export folder holding one; one request at a time, no adapters).",
        "serve 与 chat 的推理后端：auto（有 CUDA GPU 且已安装 vLLM 时 API 用 vLLM；模型是 .gguf 文件且已安装 "
        "llama-cpp-python 时用 llama.cpp；否则用 transformers）、transformers、vllm、llama.cpp（.gguf 文件或含 GGUF "
        "的导出目录；一次处理一个请求，不支持适配器）。",
    )

    @field_validator("adapters", mode="before")
    @classmethod
    def _split_adapters(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):
            return [s.strip() for s in v.split(",") if s.strip()]
        if isinstance(v, dict):
            return [f"{k}={p}" for k, p in v.items()]
        return v

    @field_validator("adapters")
    @classmethod
    def _name_equals_path(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if "=" not in a or not a.split("=", 1)[0].strip() or not a.split("=", 1)[1].strip()]
        if bad:
            raise ValueError(f"each adapter must be name=path, got {bad}")
        return v


GROUPS: dict[str, type[_Group]] = {
    "model": ModelArgs,
    "data": DataArgs,
    "finetune": FinetuneArgs,
    "train": TrainArgs,
    "eval": EvalArgs,
    "export": ExportArgs,
    "serve": ServeArgs,
    "distributed": DistributedArgs,
}


class StageSpec(BaseModel):
    """One entry of a multi-stage run: flat keys that override the top-level config for that stage."""

    model_config = ConfigDict(extra="allow")


class Config(BaseModel):
    """The whole resolved config. Access as ``cfg.train.learning_rate``; flat key view via ``flat()``."""

    model_config = ConfigDict(extra="forbid")

    model: ModelArgs = Field(default_factory=ModelArgs)
    data: DataArgs = Field(default_factory=DataArgs)
    finetune: FinetuneArgs = Field(default_factory=FinetuneArgs)
    train: TrainArgs = Field(default_factory=TrainArgs)
    eval: EvalArgs = Field(default_factory=EvalArgs)
    export: ExportArgs = Field(default_factory=ExportArgs)
    serve: ServeArgs = Field(default_factory=ServeArgs)
    distributed: DistributedArgs = Field(default_factory=DistributedArgs)
    stages: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Multi-stage training: a list of flat-key overrides, run in order, each starting "
        "from the previous stage's result.",
    )
    source: str | None = Field(None, description="The YAML file this config came from (set by the loader).")

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        # Cross-field rules live in config.load.check_semantics so that all errors are gathered.
        return self

    def flat(self) -> dict[str, Any]:
        """All keys as one flat dict (the shape users write), e.g. for saving beside a run."""
        out: dict[str, Any] = {}
        for name in GROUPS:
            out.update(getattr(self, name).model_dump())
        if self.stages:
            out["stages"] = self.stages
        return out

    @property
    def lora_alpha(self) -> int:
        """Effective LoRA alpha (2 x rank when unset)."""
        return self.finetune.lora_alpha or 2 * self.finetune.lora_rank


def field_index() -> dict[str, str]:
    """Map every flat key to the group that owns it."""
    index: dict[str, str] = {}
    for group, cls in GROUPS.items():
        for key in cls.model_fields:
            if key in index:  # pragma: no cover - guarded by a test
                raise RuntimeError(f"config key {key!r} is defined in two groups")
            index[key] = group
    return index


def field_help(key: str, lang: str = "en") -> str:
    """Help text for a flat key in English ('en') or Chinese ('zh')."""
    group = field_index()[key]
    info = GROUPS[group].model_fields[key]
    if lang == "zh" and isinstance(info.json_schema_extra, dict):
        return str(info.json_schema_extra.get("zh", info.description or ""))
    return info.description or ""
