"""report_to: one tiny run logs to TensorBoard, MLflow and W&B (offline) at once; each is read back with
the tracker's own reader. A tracker whose library is not installed is skipped (CI installs them: dev extra)."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
from pathlib import Path

import pytest

from tunesmith.config.load import load_config
from tunesmith.train.sft import run_sft

TRACKERS = [t for t in ("tensorboard", "mlflow", "wandb") if importlib.util.find_spec(t) is not None]
STEPS = 4


@pytest.fixture(scope="module")
def tracked_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not TRACKERS:
        pytest.skip("no tracker library installed")
    root = tmp_path_factory.mktemp("trackers")
    (root / "train.json").write_text(json.dumps([{"instruction": f"Say {i}.", "output": str(i)} for i in range(8)]))
    keys = {"model_name_or_path": str(tiny_model_dir), "template": "gemma", "dataset": str(root / "train.json"),
            "cutoff_len": 64, "output_dir": str(root / "run"), "per_device_train_batch_size": 2, "max_steps": STEPS,
            "logging_steps": 1, "save_steps": 100, "report_summary": False, "bf16": False, "plot_loss": False,
            "report_to": ",".join(TRACKERS)}
    with pytest.MonkeyPatch.context() as mp:  # the trackers' local defaults go into os.environ: keep them here
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE", "WANDB_MODE",
                    "WANDB_DIR", "WANDB_API_KEY"):
            mp.delenv(var, raising=False)
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("NETRC", str(root / "no-netrc"))  # no W&B login here: the run must go offline by itself
        run_sft(load_config(None, keys))
        if "wandb" in TRACKERS:
            import wandb

            wandb.finish()  # what the end of the `tunesmith train` process does
        env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "WANDB_MODE")}

    (root / "run" / "env.json").write_text(json.dumps(env))
    return root / "run"


def _logged_losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_tensorboard_events_in_the_run_folder(tracked_run: Path) -> None:
    if "tensorboard" not in TRACKERS:
        pytest.skip("tensorboard not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [events] = list((tracked_run / "runs").rglob("events.out.tfevents.*"))
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    scalars = {e.step: e.value for e in acc.Scalars("train/loss")}
    expected = _logged_losses(tracked_run)
    assert sorted(scalars) == sorted(expected) == list(range(1, STEPS + 1))
    assert all(abs(scalars[s] - expected[s]) < 1e-5 for s in expected)


def test_mlflow_file_store_holds_params_and_metrics(tracked_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if "mlflow" not in TRACKERS:
        pytest.skip("mlflow not installed")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as the run set it
    from mlflow.tracking import MlflowClient

    uri = json.loads((tracked_run / "env.json").read_text())["MLFLOW_TRACKING_URI"]
    assert uri == (tracked_run / "mlruns").resolve().as_uri(), "a local file store in the run folder by default"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tunesmith")
    [run] = client.search_runs([experiment.experiment_id])
    assert float(run.data.params["learning_rate"]) == 1e-4 and run.data.params["max_steps"] == str(STEPS)
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "loss")}
    expected = _logged_losses(tracked_run)
    assert sorted(history) == list(range(1, STEPS + 1))
    assert all(abs(history[s] - expected[s]) < 1e-5 for s in expected)


def _wandb_records(path: Path) -> list[bytes]:
    """The records of a .wandb file. Its framing is LevelDB's log format (32 KiB blocks, 7-byte record headers:
    crc32, length, kind full/first/middle/last) after a 7-byte ':W&B' header; wandb 0.31 ships no Python reader
    for it any more (its Go core reads it), so the framing is undone here and each record is parsed by wandb's
    own protobuf class."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", "a W&B transaction log"
    pos, block, records, parts = 7, 32768, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # too little room left for a header: the block is padded
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            parts = chunk
        elif kind == 3:
            parts += chunk
        elif kind == 4:
            records.append(parts + chunk)
    return records


def test_wandb_offline_run_directory_holds_the_history(tracked_run: Path) -> None:
    if "wandb" not in TRACKERS:
        pytest.skip("wandb not installed")
    from wandb.proto import wandb_internal_pb2

    assert json.loads((tracked_run / "env.json").read_text())["WANDB_MODE"] == "offline"
    [path] = list((tracked_run / "wandb").glob("offline-run-*/run-*.wandb"))
    losses = {}
    for data in _wandb_records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            if "train/loss" in items:
                losses[int(items["train/global_step"])] = items["train/loss"]
    expected = _logged_losses(tracked_run)
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert all(abs(losses[s] - expected[s]) < 1e-5 for s in expected)
