"""``tunesmith webui``: start the web UI (Data, Train, Evaluate, Chat, Export) in the browser.

The UI lives in ``tunesmith.webui``, a layer beside the CLI that the CLI does not import: this
command replaces itself with ``python -m tunesmith.webui``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from tunesmith.utils.errors import MissingExtraError

HELP = """Start the web UI on http://HOST:PORT (default 127.0.0.1:7860, only this machine can reach it).

Training started from the UI runs as its own process: refreshing the page (or restarting the UI)
re-attaches to it. Every action shows the YAML and the tunesmith command it runs.

Examples:

  tunesmith webui

  tunesmith webui --port 8080 --lang zh

  TUNESMITH_WEBUI_PASSWORD=... tunesmith webui --host 0.0.0.0     # reachable from the network, with a login
"""


def webui(
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the UI to your network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 7860,
    workdir: Annotated[Path, typer.Option(help="Folder relative paths (saves/, data/) start from.")] = Path("."),
    jobs_dir: Annotated[Path | None, typer.Option(help="Where training jobs are recorded "
                                                  "(default: ~/.cache/tunesmith/webui/jobs).")] = None,
    lang: Annotated[str, typer.Option(help="Language shown first: en or zh.")] = "en",
    password_file: Annotated[Path | None, typer.Option(
        help="File holding the login password (else $TUNESMITH_WEBUI_PASSWORD). Off loopback a login is always "
        "required: without either, a token is generated and printed once.")] = None,
    allow_outside_workdir: Annotated[bool, typer.Option(
        help="Let paths typed into the UI point outside --workdir (refused by default).")] = False,
) -> None:
    if importlib.util.find_spec("gradio") is None:
        raise MissingExtraError("The web UI needs the package 'gradio'.", hint="pip install 'tunesmith[webui]'")
    if lang not in ("en", "zh"):
        raise typer.BadParameter("choose en or zh", param_hint="--lang")
    cmd = [sys.executable, "-m", "tunesmith.webui", "--host", host, "--port", str(port), "--workdir", str(workdir),
           "--lang", lang, *(["--jobs-dir", str(jobs_dir)] if jobs_dir else []),
           *(["--password-file", str(password_file)] if password_file else []),
           *(["--allow-outside-workdir"] if allow_outside_workdir else [])]
    if os.name == "posix":
        os.execv(sys.executable, cmd)  # one process: Ctrl-C and signals reach the UI directly
    sys.exit(subprocess.call(cmd))


def register(app: typer.Typer) -> None:
    app.command(help=HELP)(webui)
