"""Experiment trackers by name (``report_to``), each run by its own library through the Trainer's callbacks.

tunesmith only picks the names and local defaults; transformers' TensorBoard / MLflow / W&B / SwanLab
callbacks do the logging, on rank 0 only. Defaults keep everything beside the run unless the user's own
environment says otherwise:

- tensorboard: event files in ``output_dir/runs/<date>_<host>`` (``TENSORBOARD_LOGGING_DIR`` wins);
- mlflow: a local file store ``output_dir/mlruns`` (``MLFLOW_TRACKING_URI`` wins), experiment ``tunesmith``;
- wandb: files in ``output_dir/wandb``; offline (``WANDB_MODE=offline``, sync later with ``wandb sync``)
  when no API key is configured, instead of stopping to ask for one;
- swanlab: offline (``SWANLAB_MODE``) when no API key is configured.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from tunesmith.config.schema import Config

# Tracker -> (importable module, pip package)
LIBRARIES = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow"),
             "wandb": ("wandb", "wandb"), "swanlab": ("swanlab", "swanlab")}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def resolve_trackers(cfg: Config) -> list[str]:
    """The trackers this run uses: ``auto`` is tensorboard when installed, else none."""
    names = cfg.train.report_to
    if names == ["auto"]:
        return ["tensorboard"] if _installed("tensorboard") else []
    return [n for n in names if n != "none"]


def check_trackers(cfg: Config) -> list[str]:
    """Problems with ``report_to`` (a tracker whose library is missing), named by key."""
    missing = [n for n in resolve_trackers(cfg) if not _installed(LIBRARIES[n][0])]
    return [f"'report_to': {n} needs the {LIBRARIES[n][1]} package; pip install 'tunesmith[trackers]' "
            f"(or pip install {LIBRARIES[n][1]}), or drop it from report_to" for n in missing]


def _has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text(encoding="utf-8")
    except OSError:
        return False


def prepare_tracker_env(cfg: Config, trackers: list[str]) -> list[str]:
    """Set the trackers' local defaults (only where the user set nothing); returns lines to print."""
    out = Path(cfg.train.output_dir).resolve()
    notes = []
    if "mlflow" in trackers and not os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = (out / "mlruns").as_uri()
        # MLflow 3 refuses its file store unless told (it prefers a database server); a run folder is a file store.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", "tunesmith")
        notes.append(f"mlflow: local file store {out / 'mlruns'} (mlflow ui --backend-store-uri {out / 'mlruns'})")
    if "wandb" in trackers:
        os.environ.setdefault("WANDB_DIR", str(out))
        if not os.environ.get("WANDB_MODE") and not _has_wandb_key():
            os.environ["WANDB_MODE"] = "offline"
            notes.append(f"wandb: no API key configured, logging offline to {out / 'wandb'} (wandb sync later)")
    if "swanlab" in trackers and not os.environ.get("SWANLAB_MODE") and not os.environ.get("SWANLAB_API_KEY"):
        os.environ["SWANLAB_MODE"] = "offline"
        os.environ.setdefault("SWANLAB_LOG_DIR", str(out / "swanlog"))
        notes.append(f"swanlab: no API key configured, logging offline to {out / 'swanlog'}")
    return notes


def tracker_arguments(cfg: Config) -> dict[str, Any]:
    """TrainingArguments keys: report_to and a run name (the run folder's name)."""
    trackers = resolve_trackers(cfg)
    return {"report_to": trackers or "none", "run_name": Path(cfg.train.output_dir).name or None}
