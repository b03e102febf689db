#!/usr/bin/env bash
# GPU check, prepared for the day a CUDA machine is lent (it has not run yet: no GPU was available when it
# was written; see README "More than one device"). Runs, in well under 10 minutes on one GPU:
#   lora-1gpu     LoRA of the bundled Gemma 3 270M (flash attention when flash-attn is installed, else SDPA;
#                 liger-kernel's fused loss when installed)
#   qlora-1gpu    the same with quantization_bit=4 (needs bitsandbytes)
#   ddp-2gpu      2 processes, DDP                        (needs 2+ GPUs)
#   zero3-2gpu    2 processes, DeepSpeed ZeRO-3 (z3)      (needs 2+ GPUs and deepspeed)
#   fsdp-2gpu     2 processes, FSDP2 full_shard           (needs 2+ GPUs)
#   vlm-1gpu      LoRA of Qwen2-VL-2B-Instruct on 64 drawn pictures (needs QWEN2_VL=the downloaded folder:
#                 huggingface-cli download Qwen/Qwen2-VL-2B-Instruct --local-dir models/Qwen2-VL-2B-Instruct)
# and prints, per case, tokens/s (tunesmith's summary.json), peak GPU memory (nvidia-smi, sampled every
# 0.2 s over all GPUs), the final loss and the wall time; every skipped case says why.
#   bash benchmarks/gpu_check.sh                # from the repository root, with .venv installed
#   STEPS=60 bash benchmarks/gpu_check.sh       # longer runs
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
STEPS="${STEPS:-40}"
CASE_TIMEOUT="${CASE_TIMEOUT:-150}"
WORK="$(mktemp -d -t tunesmith-gpu-check-XXXX)"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TUNESMITH_NO_PROGRESS=1

if ! command -v nvidia-smi >/dev/null 2>&1 || ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu_check: no CUDA GPU here (nvidia-smi or torch.cuda missing); nothing to check"
  exit 2
fi
GPUS="$("$PY" -c "import torch; print(torch.cuda.device_count())")"
has() { "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)"; }
echo "== $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1) x ${GPUS}; torch $("$PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')"
echo "   flash-attn: $(has flash_attn && echo installed || echo 'not installed (SDPA)')," \
     "liger-kernel: $(has liger_kernel && echo installed || echo 'not installed (tunesmith fused loss)')," \
     "bitsandbytes: $(has bitsandbytes && echo installed || echo 'not installed')," \
     "deepspeed: $(has deepspeed && echo installed || echo 'not installed')"

RESULTS=()
run_case() {  # name, extra key=value ...
  local name="$1"; shift
  local out="$WORK/$name"
  local mem="$WORK/$name.mem"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$mem" 2>/dev/null &
  local smi=$!
  local t0=$SECONDS
  timeout "$CASE_TIMEOUT" "$PY" -m tunesmith.cli.main train examples/quickstart.yaml "max_steps=$STEPS" \
    "output_dir=$out" report_summary=false report_to=none "$@" > "$WORK/$name.log" 2>&1
  local rc=$?
  kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
  local secs=$((SECONDS - t0))
  local peak; peak="$(sort -n "$mem" 2>/dev/null | tail -1)"
  if [ "$rc" -ne 0 ]; then
    RESULTS+=("$(printf '%-11s FAILED (exit %s after %ss): %s' "$name" "$rc" "$secs" "$(grep -m1 -iE 'error|exception' "$WORK/$name.log" | cut -c1-160)")")
    return
  fi
  RESULTS+=("$("$PY" - "$out/summary.json" "$name" "$secs" "${peak:-?}" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
print(f"{sys.argv[2]:<11} {m.get('tokens_per_s') or 0:>9.0f} tokens/s  peak GPU memory {sys.argv[4]:>6} MiB  "
      f"final loss {m.get('final_loss') or float('nan'):.3f}  {m.get('processes', 1)} process(es)  {sys.argv[3]} s")
EOF
)")
}
skip() { RESULTS+=("$(printf '%-11s skipped: %s' "$1" "$2")"); }

run_case lora-1gpu nproc_per_node=1
if has bitsandbytes; then run_case qlora-1gpu nproc_per_node=1 quantization_bit=4
else skip qlora-1gpu "bitsandbytes is not installed (pip install bitsandbytes)"; fi
if [ "$GPUS" -ge 2 ]; then
  run_case ddp-2gpu nproc_per_node=2
  if has deepspeed; then run_case zero3-2gpu nproc_per_node=2 deepspeed=z3
  else skip zero3-2gpu "deepspeed is not installed (pip install 'tunesmith[deepspeed]')"; fi
  run_case fsdp-2gpu nproc_per_node=2 fsdp=full_shard
else
  for c in ddp-2gpu zero3-2gpu fsdp-2gpu; do skip "$c" "needs 2 or more GPUs, this machine has $GPUS"; done
fi
if [ -n "${QWEN2_VL:-}" ] && [ -f "$QWEN2_VL/config.json" ]; then
  "$PY" - "$WORK/vlm-data" <<'EOF'
import json, sys
from pathlib import Path
from PIL import Image, ImageDraw
root = Path(sys.argv[1]); (root / "pics").mkdir(parents=True, exist_ok=True)
colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}
rows = []
for i in range(64):
    name, rgb = list(colours.items())[i % 4]
    img = Image.new("RGB", (224 + 28 * (i % 3), 224), rgb)
    ImageDraw.Draw(img).ellipse([20 + i, 20, 120 + i, 120], fill=tuple(c // 2 for c in rgb))
    img.save(root / "pics" / f"{i}.png")
    rows.append({"id": str(i), "image": f"{i}.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat is the main colour of this picture? One word."},
        {"from": "gpt", "value": name}]})
(root / "train.json").write_text(json.dumps(rows))
EOF
  run_case vlm-1gpu nproc_per_node=1 "model_name_or_path=$QWEN2_VL" template=auto "dataset=$WORK/vlm-data/train.json" \
    "dataset_dir=$WORK/vlm-data" "image_folder=$WORK/vlm-data/pics" eval_dataset= test_dataset= cutoff_len=512 \
    per_device_train_batch_size=4 learning_rate=1e-4 bf16=true
else
  skip vlm-1gpu "set QWEN2_VL to a downloaded Qwen/Qwen2-VL-2B-Instruct folder"
fi
echo
echo "== gpu_check: $STEPS steps of examples/quickstart.yaml per case (logs in $WORK)"
printf '%s\n' "${RESULTS[@]}"
