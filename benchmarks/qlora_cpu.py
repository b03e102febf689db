"""QLoRA against LoRA on the bundled Gemma 3 270M, on this CPU: trained tokens/s and peak memory.

Each case is a real `tunesmith train examples/quickstart.yaml` process (so the peak RSS is its own) for a
few steps; the figures come from the run's log and summary.json (trained tokens/s over all steps,
first included, and the process's peak RSS).

  .venv/bin/python benchmarks/qlora_cpu.py                 # 6 steps per case
  STEPS=10 .venv/bin/python benchmarks/qlora_cpu.py lora-bf16 qlora-4bit
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "lora-bf16": ["bf16=true"],
    "lora-fp32": ["bf16=false"],
    "qlora-4bit": ["quantization_bit=4", "quantization_type=nf4", "double_quantization=true", "bf16=true"],
    "qlora-8bit": ["quantization_bit=8", "bf16=false"],
}


def cpu_flags() -> str:
    flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0] if Path("/proc/cpuinfo").exists() else ""
    have = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f" {f}" in flags]
    return ", ".join(have) or "unknown"


def run_case(name: str, steps: int, work: Path) -> dict:
    out = work / name
    cmd = [sys.executable, "-m", "tunesmith.cli.main", "train", str(ROOT / "examples" / "quickstart.yaml"),
           f"max_steps={steps}", f"output_dir={out}", "report_summary=false", "eval_dataset=", "test_dataset=",
           "logging_steps=1", "save_steps=1000", "plot_loss=false", "torch_compile=false", *CASES[name]]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TUNESMITH_NO_PROGRESS": "1"}
    started = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.time() - started
    if proc.returncode:
        return {"case": name, "error": (proc.stderr or proc.stdout)[-600:]}
    metrics = json.loads((out / "summary.json").read_text())["metrics"]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    # the logger's tokens/s counts from the first step, so it includes that step's one-time costs
    tps = [r["tokens_per_s"] for r in log if "tokens_per_s" in r]
    return {"case": name, "steps": metrics["steps"], "tokens_per_s": tps[-1] if tps else None,
            "peak_rss_mb": metrics["peak_rss_mb"], "first_loss": metrics["first_loss"],
            "final_loss": metrics["final_loss"], "wall_s": round(wall, 1)}


def main() -> None:
    steps = int(os.environ.get("STEPS", "6"))
    names = sys.argv[1:] or list(CASES)
    print(f"CPU: {os.cpu_count()} cores visible, flags {cpu_flags()}; {steps} steps of examples/quickstart.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(json.dumps(run_case(name, steps, Path(tmp)), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
