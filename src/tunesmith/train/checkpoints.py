"""Which ``checkpoint-N`` folder a run can resume from: the newest *complete* one.

A process killed with ``kill -9`` (or by the out-of-memory killer, or a lost node) while the Trainer
writes a checkpoint leaves a folder with some files missing or cut short. transformers' own
``get_last_checkpoint`` picks the highest step whatever its state, and resuming from it fails (or
worse, silently starts the optimizer or the random generators afresh). The Trainer writes
``trainer_state.json`` last, after the weights, optimizer, scheduler and every rank's RNG state, so a
checkpoint counts as complete when that file parses and names the folder's step, and every file the
state depends on is present and whole: safetensors files whose header and size agree, ``torch.save``
files (zip archives) whose central directory, written at the very end, can be read.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
from pathlib import Path

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
           "adapter_model.bin")


def _safetensors_problem(path: Path) -> str | None:
    """A safetensors file is whole when its header parses and the data it describes fits the file."""
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
    except (struct.error, ValueError, OSError):
        return f"{path.name} has no readable header"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    return None if 8 + n + end <= size else f"{path.name} is cut short ({size} of {8 + n + end} bytes)"


def _torch_file_problem(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            zf.infolist()
    except (zipfile.BadZipFile, OSError):
        return f"{path.name} is cut short or not a torch.save file"
    return None


def checkpoint_problem(folder: str | Path, world_size: int = 1) -> str | None:
    """Why ``folder`` cannot be resumed from by ``world_size`` processes, or None when it is complete."""
    folder = Path(folder)
    state_file = folder / TRAINER_STATE
    if not state_file.is_file():
        return f"no {TRAINER_STATE} (the Trainer writes it last)"
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return f"{TRAINER_STATE} is cut short"
    match = _CHECKPOINT.match(folder.name)
    if match and state.get("global_step") != int(match.group(1)):
        return f"{TRAINER_STATE} says step {state.get('global_step')}"
    if not any((folder / w).is_file() for w in WEIGHTS) and not any(folder.glob("global_step*")):
        return "no model or adapter weights"
    for path in sorted(folder.iterdir()):
        if path.suffix == ".safetensors":
            problem = _safetensors_problem(path)
        elif path.suffix in (".pt", ".pth", ".bin"):
            problem = _torch_file_problem(path)
        else:
            continue
        if problem:
            return problem
    if not (folder / "optimizer.pt").is_file() and not any(folder.glob("global_step*")):
        return "no optimizer.pt"
    if world_size > 1:  # each rank saves its own random state, rank 0 may finish before the others
        missing = [f"rng_state_{r}.pth" for r in range(world_size) if not (folder / f"rng_state_{r}.pth").is_file()]
        if missing:
            return f"no {', '.join(missing)}"
    elif not any(folder.glob("rng_state*.pth")):
        return "no rng_state.pth"
    return None


def checkpoints(output_dir: str | Path) -> list[Path]:
    """``checkpoint-N`` folders in ``output_dir``, newest (highest N) first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]
    return sorted(found, key=lambda p: int(_CHECKPOINT.match(p.name).group(1)), reverse=True)  # type: ignore[union-attr]


def last_complete_checkpoint(output_dir: str | Path, world_size: int = 1,
                             ) -> tuple[Path | None, list[tuple[Path, str]]]:
    """(newest complete checkpoint or None, [(newer torn checkpoint, why)] skipped on the way)."""
    skipped: list[tuple[Path, str]] = []
    for folder in checkpoints(output_dir):
        problem = checkpoint_problem(folder, world_size)
        if problem is None:
            return folder, skipped
        skipped.append((folder, problem))
    return None, skipped


def holds_last_step(folder: str | Path, max_steps: int, num_train_epochs: float) -> bool:
    """True when ``folder`` already holds the last step of a run planned with these two arguments (a run
    killed after its final checkpoint, e.g. while it scored base vs tuned). transformers 5.24's Trainer,
    resumed from such a checkpoint, trains one step past the end (it checks the step count only after a
    step), so the runner finishes from the checkpoint instead."""
    state = json.loads((Path(folder) / TRAINER_STATE).read_text(encoding="utf-8"))
    step, planned = state.get("global_step", 0), state.get("max_steps", 0)
    if max_steps > 0:
        return step >= max_steps
    return bool(planned) and step >= planned and state.get("num_train_epochs") == num_train_epochs
