"""Where an export may be written, checked before any work, and how it replaces an earlier export.

``export_dir`` may be a new folder, an empty folder, or an earlier tunesmith export (recognised by
its ``tunesmith_export.json``) when ``overwrite_export_dir: true`` asks to replace it. Anything else
is refused: a folder that is or contains the adapter, the base model, the current directory or a
training run, and any other non-empty folder. An earlier export being replaced stays where it is
until the new one passed its checks; it is then moved aside, the new one moved in, and only then is
the old one removed. A failed export goes to ``<export_dir>.failed``, which may replace only an
earlier failed export.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from tunesmith.config.schema import Config
from tunesmith.model.load import local_model_paths
from tunesmith.train.resolve import RUN_CONFIG, inference_source
from tunesmith.utils.errors import ConfigError
from tunesmith.utils.io import replace_dir

MANIFEST = "tunesmith_export.json"
# Files that only a training run (or a copy of one) holds; an export never writes them.
RUN_FILES = (RUN_CONFIG, "adapter_config.json", "trainer_state.json", "train_log.jsonl", "summary.json")


@dataclass
class ExportTarget:
    """The checked destinations of one export."""

    out: Path
    failed: Path
    overwrite: bool = False

    def partial(self) -> Path:
        """A new, uniquely named folder beside ``out`` to write into (nothing existing is reused)."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=self.out.parent))


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def find_run(folder: Path, *, depth: int = 3) -> Path | None:
    """A training run's file (or checkpoint-N folder) inside ``folder``, looked for ``depth`` levels deep."""
    level = [folder]
    for _ in range(depth):
        below: list[Path] = []
        for d in level:
            try:
                entries = list(d.iterdir())
            except OSError:
                continue
            for p in entries:
                if p.name in RUN_FILES or (p.is_dir() and p.name.startswith("checkpoint-")):
                    return p
                if p.is_dir() and not p.is_symlink():
                    below.append(p)
        level = below
    return None


def _replaceable(folder: Path, key: str, *, allowed: bool, ask: str) -> str | None:
    """Why ``folder`` may not be written (None when it is new, empty, or an export that may be replaced)."""
    if not folder.exists():
        return None
    if not folder.is_dir():
        return f"'{key}': {str(folder)!r} is a file, not a folder; choose a new folder"
    if not any(folder.iterdir()):
        return None
    run = find_run(folder)
    if run is not None:
        return (f"'{key}': {str(folder)!r} holds a training run ({run}); an export never goes into a run's "
                f"folder: choose a new folder, e.g. {folder}-export")
    if not (folder / MANIFEST).is_file():
        return (f"'{key}': {str(folder)!r} is not empty and is not an earlier tunesmith export (no {MANIFEST}); "
                "nothing in it will be deleted: choose a new or empty folder")
    if not allowed:
        return (f"'{key}': {str(folder)!r} holds an earlier export; {ask} to replace it (it is kept until the "
                "new export passed its checks), or choose a new folder")
    return None


def check_export_dir(cfg: Config) -> ExportTarget:
    """The export's destinations, or a ConfigError listing why ``export_dir`` may not be written."""
    if not cfg.export.export_dir:
        raise ConfigError(["'export_dir': where should the merged model go? e.g. export_dir=saves/my-model-export"])
    out = Path(cfg.export.export_dir).expanduser()
    where = out.resolve()
    base, adapter = inference_source(cfg)
    protected = [("the current directory", Path.cwd())]
    protected += [("the adapter", Path(adapter))] if adapter else []
    protected += [("the base model", p) for p in local_model_paths(base, cfg.model.cache_dir)]
    problems = [f"'export_dir': {str(out)!r} is or contains {what} ({p}); the export would replace it: choose a "
                "new folder, e.g. saves/my-model-export" for what, p in protected if _is_within(p.resolve(), where)]
    if not problems:
        failed = out.parent / f"{out.name}.failed"
        for folder, allowed, ask in ((out, cfg.export.overwrite_export_dir, "set overwrite_export_dir=true"),
                                     (failed, True, "")):
            why = _replaceable(folder, "export_dir" if folder is out else "export_dir (failed copy)",
                               allowed=allowed, ask=ask)
            problems += [why] if why else []
    if problems:
        raise ConfigError(problems)
    return ExportTarget(out, out.parent / f"{out.name}.failed", cfg.export.overwrite_export_dir)


def publish(partial: Path, export: ExportTarget, *, passed: bool) -> Path:
    """Move the finished ``partial`` folder to export_dir (or its .failed copy); returns where it went.

    An earlier export there is moved aside first and removed only once the new one is in place. The
    destination is checked again: it may have changed while the export ran.
    """
    target = export.out if passed else export.failed
    why = _replaceable(target, "export_dir", allowed=export.overwrite or not passed,
                       ask="set overwrite_export_dir=true")
    if why:
        raise ConfigError([why + f" (the new export is kept in {partial})"])
    return replace_dir(partial, target)
