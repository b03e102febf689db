"""Web UI security: paths typed into the UI stay inside --workdir (unless widened), and a UI bound
beyond loopback always asks for a login."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from tunesmith.webui import form
from tunesmith.webui.jobs import JobManager
from tunesmith.webui.security import PathPolicy, PathRefused, is_loopback, resolve_login
from tunesmith.webui.tab_chat import ChatTab
from tunesmith.webui.tab_data import DataTab
from tunesmith.webui.tab_train import TrainTab, load_file
from tunesmith.webui.ui import Context

OUTSIDE = ["/etc/passwd", "../secret.yaml", "sub/../../secret.yaml", "~/.ssh/id_rsa"]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "ok.yaml").write_text("dataset: x\nlearning_rate: 2.0e-4\n")
    (tmp_path / "secret.yaml").write_text("dataset: secret\n")
    return work


@pytest.mark.parametrize("path", OUTSIDE)
def test_paths_outside_the_workdir_are_refused(work: Path, path: str) -> None:
    with pytest.raises(PathRefused, match="outside the work folder"):
        PathPolicy(work).resolve(path, "config file")
    assert PathPolicy(work, allow_outside=True).resolve(path, "config file").is_absolute()  # the widening flag


def test_paths_inside_are_resolved_against_the_workdir(work: Path) -> None:
    policy = PathPolicy(work)
    assert policy.resolve("ok.yaml", "x") == (work / "ok.yaml").resolve()
    assert policy.resolve("sub/../ok.yaml", "x") == (work / "ok.yaml").resolve()
    assert policy.resolve(str(work / "saves" / "new-run"), "x") == (work / "saves" / "new-run").resolve()


def test_a_symlink_out_of_the_workdir_is_refused(work: Path, tmp_path: Path) -> None:
    (work / "link").symlink_to(tmp_path / "secret.yaml")
    with pytest.raises(PathRefused):
        PathPolicy(work).resolve("link", "config file")


def test_config_paths_are_checked_key_by_key(work: Path) -> None:
    policy = PathPolicy(work)
    policy.check_config({"output_dir": "saves/run", "dataset": ["toy", "data/train.json"],
                         "resume_from_checkpoint": "last", "model_name_or_path": "/models/anywhere"})
    for key, value in [("output_dir", "/etc/cron.d"), ("dataset_dir", "../data"), ("adapter_name_or_path", "/root"),
                       ("dataset", ["toy", "../../etc/passwd"]), ("export_dir", "/tmp/out")]:
        with pytest.raises(PathRefused, match=f"'{key}'"):
            policy.check_config({key: value})


def _ctx(work: Path) -> Context:
    return Context(JobManager(work / "jobs"), work)


@pytest.mark.parametrize("path", ["/etc/passwd", "../secret.yaml"])
def test_load_yaml_refuses_paths_outside_and_leaves_the_form_alone(work: Path, path: str) -> None:
    out = load_file(_ctx(work), path, "en")
    assert "outside the work folder" in out[-1]
    assert all(u == gr.update() for u in out[:-1])  # no field was filled from the file


def test_load_yaml_inside_the_workdir_fills_the_form(work: Path) -> None:
    out = load_file(_ctx(work), "ok.yaml", "en")
    assert "ok.yaml" in out[-1] and "outside" not in out[-1]
    index = [f.key for f in form.FIELDS].index("learning_rate")
    assert float(out[index]["value"]) == pytest.approx(2e-4)


def test_training_from_the_form_refuses_an_output_dir_outside(work: Path) -> None:
    values = form.form_values({**{f.key: f.default for f in form.FIELDS}, "dataset": ["toy"],
                               "output_dir": "/etc/evil"})
    with pytest.raises(gr.Error, match="outside the work folder"):
        TrainTab(_ctx(work))._start(*values, [], "en")
    assert not list((work / "jobs").glob("*/job.json"))  # no job was started


def test_dataset_folder_and_adapter_outside_are_refused(work: Path) -> None:
    _, message = DataTab(_ctx(work))._preview("passwd", "/etc", "en")
    assert "outside the work folder" in message
    with pytest.raises(gr.Error, match="outside the work folder"):
        ChatTab(_ctx(work))._load("adapter", "gemma-3-270m", "../elsewhere", "auto", "en")


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                           ("0.0.0.0", False), ("192.168.1.5", False), ("::", False)])
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_login_is_required_off_loopback_only(tmp_path: Path) -> None:
    assert resolve_login("127.0.0.1", env={}) is None
    generated = resolve_login("0.0.0.0", env={})
    assert generated is not None and generated.generated and len(generated.password) >= 16
    assert resolve_login("0.0.0.0", env={}).password != generated.password  # a fresh token each start
    assert resolve_login("0.0.0.0", env={"TUNESMITH_WEBUI_PASSWORD": "s3cret"}).password == "s3cret"
    (tmp_path / "pw").write_text("from-file\n")
    from_file = resolve_login("0.0.0.0", tmp_path / "pw", env={})
    assert (from_file.user, from_file.password, from_file.generated) == ("tunesmith", "from-file", False)
    assert resolve_login("127.0.0.1", env={"TUNESMITH_WEBUI_PASSWORD": "x"}) is not None  # asked for on loopback


def test_login_check(tmp_path: Path) -> None:
    login = resolve_login("0.0.0.0", env={"TUNESMITH_WEBUI_PASSWORD": "pässwörd", "TUNESMITH_WEBUI_USER": "ana"})
    assert login.check("ana", "pässwörd")
    assert not login.check("ana", "pässwörd ") and not login.check("bob", "pässwörd") and not login.check("ana", "")


def test_an_uploaded_config_loads_from_the_upload_folder(work: Path, tmp_path: Path) -> None:
    """Gradio keeps uploads in its own folder, outside --workdir: an upload is not a typed path."""
    upload = tmp_path / "gradio-upload" / "mine.yaml"
    upload.parent.mkdir()
    upload.write_text("dataset: x\nlearning_rate: 3.0e-4\n")
    out = load_file(_ctx(work), str(upload), "en", uploaded=True)
    assert "outside" not in out[-1]
    index = [f.key for f in form.FIELDS].index("learning_rate")
    assert float(out[index]["value"]) == pytest.approx(3e-4)
    assert "outside the work folder" in load_file(_ctx(work), str(upload), "en")[-1]  # the same path typed
