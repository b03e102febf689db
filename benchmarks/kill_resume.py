"""kill -9 at random steps, then ``resume_from_checkpoint=last``: does the resumed run end where an uninterrupted
run ends? Repeats the trial and prints one line per trial.

Each trial starts the real ``tunesmith train``, SIGKILLs it and every process it started (torchrun and its
workers) once the run's log reaches a random step (the whole job dies at once, as on a lost node),
resumes it with ``resume_from_checkpoint=last``, and compares it with one uninterrupted run of the same
config: the step it resumed from, whether the log continues the step count (each step once, the resumed
process starting after the checkpoint's step), and the largest difference of any logged loss and of any
adapter weight; ``torn`` lists the checkpoints the kill left incomplete (skipped by the resume). Exits
non-zero when a trial restarts from step 0, repeats steps, or differs by more than ``--bound`` (default 1e-6;
the arithmetic is replayed exactly, so 0.0 is expected on one machine).

    python benchmarks/kill_resume.py                       # 5 trials, tiny model, 1 process
    python benchmarks/kill_resume.py --processes 2         # 2 CPU processes (torchrun, gloo)
    python benchmarks/kill_resume.py --model gemma-3-270m --steps 30 --trials 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tiny_model(folder: Path) -> str:
    """The test suite's tiny Gemma 3 (2 layers, hidden 32) and byte-level tokenizer."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import build_tiny_model, build_tokenizer

    build_tokenizer(folder)
    build_tiny_model(folder, len(json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]))
    return str(folder)


def log(out: Path) -> list[dict]:
    path = out / "train_log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def train(config: Path, processes: int, *, kill_at: int | None = None, out: Path | None = None) -> int | None:
    """Run `tunesmith train CONFIG`; with ``kill_at``, SIGKILL it and its processes at that step and return the
    last logged step."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TUNESMITH_NO_PROGRESS": "1"}
    command = [sys.executable, "-m", "tunesmith.cli.main", "train", str(config)]
    if processes > 1:
        env["TUNESMITH_FORCE_LAUNCHER"] = "1"
        command.append(f"nproc_per_node={processes}")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    if kill_at is None:
        _, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"training failed:\n{err.decode(errors='replace')[-3000:]}")
        return None
    assert out is not None
    while proc.poll() is None and not any(r.get("step", 0) >= kill_at for r in log(out)):
        time.sleep(0.01)
    if proc.poll() is not None:
        raise SystemExit(f"the run ended (exit {proc.returncode}) before step {kill_at}; use more --steps")
    # Every process of the job at once: torchrun starts its workers in sessions of their own, so killing the
    # process group alone would leave them training.
    import psutil

    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for p in family:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=30)
    proc.wait()
    return max(r["step"] for r in log(out))


def adapter_diff(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    wa, wb = load_file(a / "adapter_model.safetensors"), load_file(b / "adapter_model.safetensors")
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def trial(keys: dict, work: Path, whole: Path, steps: int, processes: int, rng: random.Random) -> dict:
    out = work / f"trial-{rng.getrandbits(32):08x}"
    config = work / f"{out.name}.yaml"
    config.write_text(json.dumps({**keys, "output_dir": str(out)}))
    kill_at = rng.randint(max(2, keys["save_steps"] + 1), steps - 5)
    reached = train(config, processes, kill_at=kill_at, out=out)
    from tunesmith.train.checkpoints import last_complete_checkpoint

    _, torn = last_complete_checkpoint(out, processes)  # what the resume will skip, seen before it runs
    resume = work / f"{out.name}-resume.yaml"
    resume.write_text(json.dumps({**keys, "output_dir": str(out), "resume_from_checkpoint": "last"}))
    started = time.time()
    train(resume, processes)
    rows = [r for r in log(out) if "loss" in r]
    new = [r["step"] for r in rows if r["time"] >= started]
    expected = {r["step"]: r["loss"] for r in log(whole) if "loss" in r}
    return {"kill_at": kill_at, "reached": reached, "resumed_from": (new[0] - 1) if new else None,
            "torn": ",".join(p.name.split("-")[1] for p, _ in torn) or "-",
            "steps_once": [r["step"] for r in rows] == list(range(1, steps + 1)),
            "new_steps": len(new),
            "max_loss_diff": max(abs(r["loss"] - expected.get(r["step"], float("inf"))) for r in rows),
            "max_adapter_diff": adapter_diff(out, whole), "resume_s": round(time.time() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--model", default=None, help="a model (default: a tiny random Gemma 3 built here)")
    parser.add_argument("--bound", type=float, default=1e-6)
    parser.add_argument("--seed", type=int, default=None, help="seed for the kill steps (default: random)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="tunesmith-kill-resume-"))
    model = args.model or tiny_model(work / "model")
    data = work / "train.json"
    data.write_text(json.dumps([{"instruction": f"What is {i} + {i % 7}?", "output": str(i + i % 7)}
                                for i in range(64)]))
    keys = {"model_name_or_path": model, "dataset": str(data), "cutoff_len": 128, "max_steps": args.steps,
            "save_steps": 3, "logging_steps": 1, "per_device_train_batch_size": 2, "learning_rate": 1e-2,
            "report_summary": False, "report_to": "none", "plot_loss": False, "num_threads": 1, "seed": 7}
    if args.model is None:
        keys.update(template="gemma", bf16=False)
    (work / "whole.yaml").write_text(json.dumps({**keys, "output_dir": str(work / "whole")}))
    print(f"uninterrupted run ({args.processes} process(es), {args.steps} steps) ... ", end="", flush=True)
    t0 = time.time()
    train(work / "whole.yaml", args.processes)
    print(f"{time.time() - t0:.0f}s; kill steps drawn with seed {seed}; files in {work}")
    header = f"{'trial':>5} {'kill at':>7} {'reached':>7} {'torn':>5} {'resumed':>7} {'log ok':>6} {'new':>4} " \
             f"{'max |dloss|':>11} {'max |dw|':>9} {'resume s':>8}"
    print(header)
    failed = 0
    for i in range(args.trials):
        r = trial(keys, work, work / "whole", args.steps, args.processes, rng)
        ok = r["steps_once"] and r["resumed_from"] and r["max_loss_diff"] <= args.bound \
            and r["max_adapter_diff"] <= args.bound
        failed += not ok
        print(f"{i + 1:>5} {r['kill_at']:>7} {r['reached']:>7} {r['torn']:>5} {r['resumed_from']!s:>7} "
              f"{r['steps_once']!s:>6} "
              f"{r['new_steps']:>4} {r['max_loss_diff']:>11.2e} {r['max_adapter_diff']:>9.2e} {r['resume_s']:>8}"
              + ("" if ok else "  FAIL"))
    print(f"{args.trials - failed} of {args.trials} trials resumed from their last complete checkpoint and ended "
          f"within {args.bound:g} of the uninterrupted run")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
