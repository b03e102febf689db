"""The time estimate's promise on this machine: calibrate, train for real, calibrate again, compare.

Calibrates the quickstart config on the bundled Gemma 3 270M (a few real steps), runs the real
training, calibrates again (the average of the two calibrations cancels a steady change in what else
the machine runs) and reports predicted vs actual ``train_runtime_s``. The estimate aims at +-25%;
on a machine shared with other heavy jobs the figure says little, so the load average is printed.

    python benchmarks/estimate_accuracy.py                 # 24 steps of the quickstart
    python benchmarks/estimate_accuracy.py --steps 84      # the whole quickstart run
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from tunesmith.advise.calibrate import calibrate
from tunesmith.advise.estimate import workload
from tunesmith.advise.profile import build_profile
from tunesmith.config import load_config
from tunesmith.train.sft import run_sft

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--calibration-steps", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(ROOT / "examples" / "quickstart.yaml", {
            "output_dir": str(Path(tmp) / "run"), "max_steps": args.steps, "eval_steps": max(1, args.steps // 2),
            "report_summary": False, "plot_loss": False, "save_steps": 100_000,
        })
        w = workload(cfg.flat(), build_profile(cfg))
        before = calibrate(cfg, steps=args.calibration_steps).train_seconds(w)
        actual = run_sft(cfg).metrics["train_runtime_s"]
        after = calibrate(cfg, steps=args.calibration_steps).train_seconds(w)
    predicted = (before + after) / 2
    error = (predicted - actual) / actual
    print(f"predicted {predicted:.1f}s (calibrated before {before:.1f}, after {after:.1f}), actual {actual:.1f}s: "
          f"{100 * error:+.0f}% (aim: within +-25%); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
