"""Time and memory of a training run from a documented FLOPs and memory model, and the nearest config
that fits a device.

FLOPs (per token; N = parameters of the decoder layers' linear maps, V x h = the output layer):
- forward = 2N + attention 4 * layers * heads * head_dim * (mean length / 2) + output layer 2Vh
  (tunesmith's fast path computes the output layer only where labels are: times the loss share)
- full tuning: 3 x forward (forward, gradients for activations and for weights); LoRA: 2 x forward
  (frozen weights need no weight gradients); freeze: 1 + 2 x (trained layers / layers)
- gradient checkpointing: one more forward of the decoder layers
- evaluation: forward only, over the validation tokens, once per eval_steps
Time on a GPU = FLOPs / (peak TFLOPS x MFU) + steps x (overhead + optimizer traffic / bandwidth).

Memory (bytes), at the longest batch (batch size x longest row):
- weights: 2 per parameter for LoRA in bf16 (frozen base stays bf16), otherwise 4 (fp32 master weights);
  QLoRA (quantization_bit 4 / 8): the decoder layers' linear weights at 0.5 + 0.016 bytes (nf4 with
  double-quantized constants) or 1.0 byte, everything else (embeddings, output layer) at 2; ZeRO-3
  with CPU offload (deepspeed: z3_offload): only two layers' weights (or the embedding) on the device
  at a time, and the trained parameters' states live in CPU memory (16 bytes each there)
- trained parameters: +12 each (fp32 gradient + Adam's two moments); LoRA's own weights 16 each
- activations per token per layer: 8h + 3 q_dim + 3 kv_dim + 4 ffn values (norm inputs and outputs,
  q/k/v, attention output, gate/up/activation), 2 bytes each in bf16 and 4 in fp32; with gradient
  checkpointing only each layer's input (h values) plus one layer recomputed
- logits: fast path with a frozen output layer (LoRA, freeze): no logits, one vocabulary block of
  2^21 values in bf16 + fp32 (the online loss); full tuning: one chunk of 256 rows x V in bf16 + fp32;
  standard path batch x length x V x 10 bytes (bf16 logits, fp32 copy, gradient)
- overhead: the device's context (CUDA) or the process's baseline (CPU)
- on the CPU the peak may instead come while loading: baseline + the mapped checkpoint file + the
  converted weights
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunesmith.advise.profile import DataProfile
from tunesmith.train.steps import default_eval_steps, steps_per_epoch, total_steps  # the run's own count
from tunesmith.utils.errors import ConfigError

GPUS_FILE = Path(__file__).with_name("gpus.yaml")
FAST_CHUNK = 256  # rows per chunk of the buffered fast loss (train/fast.py DEFAULT_CHUNK)
ONLINE_BLOCK_VALUES = 1 << 21  # the online loss's vocabulary block (train/fast.py BLOCK_ELEMENTS)
GB = 1024**3
QUANT_BYTES = {4: 0.5 + (1 + 4 / 256) / 64, 8: 1.0}  # per weight: nf4 + double-quantized absmax; LLM.int8


@dataclass
class ModelShape:
    """The dimensions that decide compute and memory, read from config.json."""

    name: str
    vocab: int
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool = True
    total_params: int = 0
    checkpoint_bytes: int = 0  # size of the weight files on disk

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear map in one decoder layer (Llama/Qwen/Gemma layout)."""
        h, q, kv, f = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, f), "up_proj": (h, f), "down_proj": (f, h)}

    @property
    def layer_linear_params(self) -> int:
        return sum(i * o for i, o in self.linears().values())

    def lora_params(self, rank: int, targets: list[str]) -> int:
        chosen = self.linears() if targets in (["all"], []) else {k: v for k, v in self.linears().items()
                                                                  if k in targets}
        return self.layers * sum(rank * (i + o) for i, o in chosen.values())

    def activation_values(self) -> int:
        """Values saved for backward per token per layer (see the module docstring)."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return 8 * self.hidden + 3 * q + 3 * kv + 4 * self.intermediate


def _safetensors_params(folder: Path) -> int:
    """Exact parameter count from safetensors headers (no weights are read)."""
    total = 0
    for f in sorted(folder.glob("*.safetensors")):
        with f.open("rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(size))
        total += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return total


def model_shape(model_path: str) -> ModelShape:
    """ModelShape of a local Hugging Face folder."""
    path = Path(model_path)
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise ConfigError([f"'model_name_or_path': {model_path!r} has no config.json to read the model's size from"])
    cfg = json.loads(cfg_file.read_text())
    cfg = {**cfg, **cfg.get("text_config", {})}
    heads = int(cfg["num_attention_heads"])
    hidden = int(cfg["hidden_size"])
    shape = ModelShape(
        name=path.name, vocab=int(cfg["vocab_size"]), hidden=hidden, layers=int(cfg["num_hidden_layers"]),
        intermediate=int(cfg.get("intermediate_size") or 4 * hidden), heads=heads,
        kv_heads=int(cfg.get("num_key_value_heads") or heads), head_dim=int(cfg.get("head_dim") or hidden // heads),
        tied=bool(cfg.get("tie_word_embeddings", True)),
    )
    shape.checkpoint_bytes = sum(f.stat().st_size for f in path.glob("*.safetensors"))
    counted = _safetensors_params(path)
    shape.total_params = counted or (shape.layers * shape.layer_linear_params
                                     + shape.vocab * shape.hidden * (1 if shape.tied else 2))
    return shape


@dataclass
class Workload:
    """What one run does: tokens, steps, batch shapes and what trains."""

    tokens: int  # tokens read in training (all epochs)
    loss_share: float
    steps: int
    batch_size: int
    grad_accum: int
    longest_row: int
    mean_len: float
    val_tokens: int
    n_evals: int
    finetuning_type: str
    lora_rank: int
    lora_target: list[str]
    freeze_layers: int
    gradient_checkpointing: bool
    fast_path: bool
    cutoff_len: int
    epochs: float
    quant_bits: int | None = None  # QLoRA: quantization_bit
    zero3_offload: bool = False  # deepspeed: z3_offload

    @property
    def eval_tokens(self) -> int:
        return self.val_tokens * self.n_evals


def workload(settings: dict[str, Any], data: DataProfile) -> Workload:
    """The run a flat config (``Config.flat()`` plus changes) makes of this data."""
    cutoff = int(settings["cutoff_len"])
    # The profile's exact count, unless cutoff_len changes (then the truncated lengths).
    per_epoch = data.tokens_per_epoch if cutoff == data.cutoff_len else sum(min(n, cutoff) for n in data.lengths)
    bs, ga = int(settings["per_device_train_batch_size"]), int(settings["gradient_accumulation_steps"])
    epochs, max_steps = float(settings["num_train_epochs"]), int(settings["max_steps"])
    steps = total_steps(data.n_rows, bs, ga, epochs, max_steps)
    if max_steps > 0:  # max_steps overrides epochs, in either direction
        epochs = steps / steps_per_epoch(data.n_rows, bs, ga)
    tokens = round(per_epoch * epochs)
    has_val = data.n_val > 0
    eval_steps = settings.get("eval_steps") or default_eval_steps(steps)
    return Workload(
        tokens=tokens, loss_share=data.loss_share, steps=steps, batch_size=bs, grad_accum=ga,
        longest_row=min(data.max_len, cutoff) if data.lengths else cutoff,
        mean_len=sum(min(n, cutoff) for n in data.lengths) / len(data.lengths) if data.lengths else cutoff,
        val_tokens=data.val_tokens if has_val else 0, n_evals=steps // eval_steps if has_val else 0,
        finetuning_type=settings["finetuning_type"], lora_rank=int(settings["lora_rank"]),
        lora_target=list(settings["lora_target"]), freeze_layers=int(settings["freeze_trainable_layers"]),
        gradient_checkpointing=bool(settings["gradient_checkpointing"]), fast_path=bool(settings["fast_path"]),
        cutoff_len=cutoff, epochs=epochs,
        quant_bits=int(settings["quantization_bit"]) if settings.get("quantization_bit") else None,
        zero3_offload=settings.get("deepspeed") == "z3_offload",
    )


def trainable_params(shape: ModelShape, w: Workload) -> int:
    if w.finetuning_type == "lora":
        return shape.lora_params(w.lora_rank, w.lora_target)
    if w.finetuning_type == "freeze":
        return min(w.freeze_layers, shape.layers) * shape.layer_linear_params
    return shape.total_params


def forward_flops_per_token(shape: ModelShape, w: Workload, *, head_share: float) -> tuple[float, float]:
    """(decoder layers, output layer) forward FLOPs per token."""
    body = 2 * shape.layers * shape.layer_linear_params
    body += 4 * shape.layers * shape.heads * shape.head_dim * (w.mean_len / 2)
    head = 2 * shape.vocab * shape.hidden * head_share
    return body, head


def train_flops(shape: ModelShape, w: Workload) -> float:
    """FLOPs of the training steps plus the evaluations (see the module docstring)."""
    share = w.loss_share if w.fast_path else 1.0
    body, head = forward_flops_per_token(shape, w, head_share=share)
    if w.finetuning_type == "full":
        mult, head_mult = 3.0, 3.0
    elif w.finetuning_type == "freeze":
        mult, head_mult = 1 + 2 * min(w.freeze_layers, shape.layers) / shape.layers, 2.0
    else:
        mult, head_mult = 2.0, 2.0
    if w.gradient_checkpointing:
        mult += 1.0
    train = w.tokens * (body * mult + head * head_mult)
    return train + w.eval_tokens * (body + head)


@dataclass
class Memory:
    """Peak memory by part, in bytes."""

    weights: float
    trainable_states: float
    activations: float
    logits: float
    overhead: float
    loading: float = 0.0  # host memory while the weights load (the file is mapped, then converted)

    @property
    def training(self) -> float:
        return self.weights + self.trainable_states + self.activations + self.logits + self.overhead

    @property
    def total(self) -> float:
        return max(self.training, self.loading)

    def to_dict(self) -> dict[str, float]:
        return {k: round(v / GB, 3) for k, v in {**self.__dict__, "total": self.total}.items()}


def peak_memory(shape: ModelShape, w: Workload, *, bf16: bool, overhead_bytes: float, host: bool = False) -> Memory:
    """Peak training memory at the longest batch (see the module docstring). ``host``: memory of the
    machine that loads the checkpoint (the CPU), which peaks while the mapped file is converted."""
    lora = w.finetuning_type == "lora"
    weights = shape.total_params * (2 if (bf16 and lora) else 4)
    trained = trainable_params(shape, w)
    states = trained * (16 if lora else 12)
    if lora and w.quant_bits:
        linear = shape.layers * shape.layer_linear_params
        weights = linear * QUANT_BYTES[w.quant_bits] + (shape.total_params - linear) * (2 if bf16 else 4)
    elif w.zero3_offload:  # parameters and optimizer states in CPU memory; the device holds what computes
        weights = 2 * max(shape.layer_linear_params, shape.vocab * shape.hidden) * (2 if bf16 else 4)
        states = 0.0
    tokens = w.batch_size * w.longest_row
    act_bytes = 2 if bf16 else 4
    per_layer = shape.activation_values() * act_bytes * tokens
    if w.gradient_checkpointing:
        activations = shape.layers * shape.hidden * 4 * tokens + per_layer
    else:
        activations = shape.layers * per_layer
    rows = min(FAST_CHUNK, max(1, round(tokens * w.loss_share)))
    if w.fast_path and w.finetuning_type != "full":
        logits = min(ONLINE_BLOCK_VALUES, rows * shape.vocab) * 6  # one vocabulary block, bf16 + fp32
    elif w.fast_path:
        logits = rows * shape.vocab * 6
    else:
        logits = tokens * shape.vocab * 10
    loading = overhead_bytes + shape.checkpoint_bytes + weights if host else 0.0
    return Memory(weights, states, activations, logits, overhead_bytes, loading)


@dataclass
class Device:
    """A GPU from gpus.yaml (or this machine's CPU)."""

    name: str
    memory_gb: float
    bf16_tflops: float | None
    fp32_tflops: float
    bandwidth_gbs: float
    mfu: float = 0.35
    step_overhead_s: float = 0.03
    context_gb: float = 1.0
    headroom: float = 0.9

    @property
    def bf16(self) -> bool:
        return bool(self.bf16_tflops)

    @property
    def usable_bytes(self) -> float:
        return self.memory_gb * GB * self.headroom


def load_gpus(path: str | Path | None = None) -> dict[str, Device]:
    """Devices by name (aliases included) from gpus.yaml or a user's file of the same shape."""
    file = Path(path) if path else GPUS_FILE
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([f"cannot read the GPU table {str(file)!r}: {exc}"]) from exc
    defaults = data.get("defaults", {})
    devices: dict[str, Device] = {}
    problems = []
    for name, spec in (data.get("gpus") or {}).items():
        try:
            devices[str(name)] = Device(name=str(name), **{**defaults, **spec})
        except TypeError as exc:
            problems.append(f"{file}: gpus.{name}: {exc}")
    if problems:
        raise ConfigError(problems)
    for alias, target in (data.get("aliases") or {}).items():
        if str(target) in devices:
            devices[str(alias)] = devices[str(target)]
    return devices


@dataclass
class DeviceEstimate:
    """Time and memory of one run on one device."""

    device: str
    seconds: float
    memory: Memory
    fits: bool


def estimate_on(device: Device, shape: ModelShape, w: Workload) -> DeviceEstimate:
    """The FLOPs/memory model applied to one GPU."""
    flops = train_flops(shape, w)
    tflops = device.bf16_tflops if device.bf16 else device.fp32_tflops
    compute = flops / (tflops * 1e12 * device.mfu)
    optimizer = trainable_params(shape, w) * 28 / (device.bandwidth_gbs * 1e9)  # Adam: read 4, write 3 fp32 tensors
    seconds = compute + w.steps * (device.step_overhead_s + optimizer)
    memory = peak_memory(shape, w, bf16=device.bf16, overhead_bytes=device.context_gb * GB)
    return DeviceEstimate(device.name, seconds, memory, memory.total <= device.usable_bytes)


@dataclass
class Fit:
    """The nearest config that fits a memory budget."""

    changes: dict[str, Any]
    memory: Memory
    notes: list[str] = field(default_factory=list)


def _batch_options(bs: int, ga: int) -> list[tuple[int, int]]:
    """Smaller batches with more accumulation, keeping the effective batch size."""
    out = []
    b = bs
    while b >= 1:
        out.append((b, max(1, (bs * ga) // b)))
        if b == 1:
            break
        b = max(1, b // 2)
    return out


def nearest_fit(shape: ModelShape, data: DataProfile, settings: dict[str, Any], budget_bytes: float, *,
                bf16: bool, overhead_bytes: float, host: bool = False) -> Fit | None:
    """The least intrusive change that brings peak memory under ``budget_bytes``, or None if the config
    already fits. Tried in order: smaller batch with more accumulation; + gradient checkpointing; LoRA
    instead of full/freeze tuning; a shorter cutoff_len (reporting the examples it would cut)."""

    def memory_of(changes: dict[str, Any]) -> Memory:
        return peak_memory(shape, workload({**settings, **changes}, data), bf16=bf16, overhead_bytes=overhead_bytes,
                           host=host)

    if memory_of({}).total <= budget_bytes:
        return None
    bs, ga = int(settings["per_device_train_batch_size"]), int(settings["gradient_accumulation_steps"])
    kinds: list[dict[str, Any]] = [{"finetuning_type": settings["finetuning_type"]}]
    if settings["finetuning_type"] != "lora":
        kinds.append({"finetuning_type": "lora"})
    if not host:  # bitsandbytes and DeepSpeed need a GPU: QLoRA, then (keeping full tuning) ZeRO-3 offload
        kinds.append({"finetuning_type": "lora", "quantization_bit": 4})
        if settings["finetuning_type"] == "full":
            kinds.append({"finetuning_type": "full", "deepspeed": "z3_offload"})
    for kind in kinds:
        for ckpt in sorted({bool(settings["gradient_checkpointing"]), True}):
            for b, g in _batch_options(bs, ga):
                changes = _diff(settings, {**kind, "gradient_checkpointing": ckpt,
                                           "per_device_train_batch_size": b, "gradient_accumulation_steps": g})
                mem = memory_of(changes)
                if mem.total <= budget_bytes:
                    return Fit(_with_lora_rate(changes, settings), mem, _fit_notes(changes, settings, shape))
    lengths = sorted(data.lengths)
    for q in (0.99, 0.95, 0.9, 0.75, 0.5):
        cut = max(64, int(math.ceil(lengths[min(len(lengths) - 1, int(q * len(lengths)))] / 64) * 64)) if lengths \
            else int(settings["cutoff_len"]) // 2
        if cut >= int(settings["cutoff_len"]):
            continue
        changes = _diff(settings, {"finetuning_type": "lora", "gradient_checkpointing": True,
                                   "per_device_train_batch_size": 1, "gradient_accumulation_steps": bs * ga,
                                   "cutoff_len": cut})
        mem = memory_of(changes)
        if mem.total <= budget_bytes:
            n_cut = sum(1 for n in data.lengths if n > cut)
            notes = _fit_notes(changes, settings, shape) + [
                f"cutoff_len {cut} cuts {n_cut} of {len(data.lengths)} examples"]
            return Fit(_with_lora_rate(changes, settings), mem, notes)
    return Fit({}, memory_of({}), ["nothing tried fits: use a smaller model or a device with more memory"])


def _diff(settings: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in wanted.items() if settings.get(k) != v}


def _with_lora_rate(changes: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Switching to LoRA also means a LoRA learning rate (the notes: LoRA trains with a higher one)."""
    if changes.get("finetuning_type") == "lora" and float(settings["learning_rate"]) < 5e-5:
        return {**changes, "learning_rate": 2e-4}
    return changes


def _fit_notes(changes: dict[str, Any], settings: dict[str, Any], shape: ModelShape | None = None) -> list[str]:
    notes = []
    if changes.get("quantization_bit"):
        notes.append("QLoRA: the frozen base in 4 bits (bitsandbytes, pip install 'tunesmith[qlora]'); the adapter "
                     "merges into the unquantized base at export")
    if changes.get("deepspeed") == "z3_offload":
        host = f" (~{16 * shape.total_params / GB:.0f} GB for this model)" if shape else ""
        notes.append(f"ZeRO-3 with CPU offload: weights and Adam states in CPU memory, 16 bytes per parameter{host}; "
                     "several times slower per step (pip install 'tunesmith[deepspeed]')")
    if "per_device_train_batch_size" in changes:
        notes.append("same effective batch (batch x accumulation), so training behaves the same")
    if changes.get("gradient_checkpointing"):
        notes.append("gradient checkpointing: about 30% slower, much less activation memory")
    if changes.get("finetuning_type") == "lora":
        notes.append(f"LoRA instead of {settings['finetuning_type']} tuning: a different method, with a higher "
                     "learning rate")
    return notes

