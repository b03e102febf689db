"""Who may use the web UI, and which files it may touch.

- **Login.** On loopback (127.0.0.1, ::1, localhost) only this machine's users can reach the UI and
  no login is asked unless a password is set. Bound to any other address, a login is required: the
  password comes from ``$TUNESMITH_WEBUI_PASSWORD`` or ``--password-file``, or else a random token
  is generated and printed once at start. The user name is ``tunesmith`` (``$TUNESMITH_WEBUI_USER``).
  Passwords are compared in constant time.
- **Paths.** Every path typed into the UI (a config to load, dataset folder, output folder, adapter,
  run folder, ...) must lie inside ``--workdir``; ``/etc/passwd`` and ``../../x`` are refused.
  ``--allow-outside-workdir`` lifts this for a trusted, local user. Model names and hub ids are not
  paths and pass; a model given as a path is read-only input and is allowed anywhere.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.utils.errors import TunesmithError

PASSWORD_ENV, USER_ENV, DEFAULT_USER = "TUNESMITH_WEBUI_PASSWORD", "TUNESMITH_WEBUI_USER", "tunesmith"

# Config keys whose values are paths the UI's commands read or write.
PATH_KEYS = ("dataset_dir", "output_dir", "adapter_name_or_path", "continue_from", "resume_from_checkpoint",
             "cache_dir", "eval_output_dir", "export_dir", "judge_rubric", "deepspeed")
DATASET_KEYS = ("dataset", "eval_dataset", "test_dataset", "replay_dataset")


class PathRefused(TunesmithError):
    """A path typed into the web UI lies outside its work folder."""

    title = "Path refused"


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class Login:
    """The one account of a web UI session; ``generated`` when the password was made up at start."""

    user: str
    password: str
    generated: bool = False

    def check(self, user: str, password: str) -> bool:
        ok_user = hmac.compare_digest(user.encode(), self.user.encode())
        ok_password = hmac.compare_digest(password.encode(), self.password.encode())
        return ok_user and ok_password


def resolve_login(host: str, password_file: str | Path | None = None,
                  env: dict[str, str] | None = None) -> Login | None:
    """The login the UI requires on ``host``, or None (loopback without a password)."""
    env = dict(os.environ) if env is None else env
    user = env.get(USER_ENV) or DEFAULT_USER
    if env.get(PASSWORD_ENV):
        return Login(user, env[PASSWORD_ENV])
    if password_file:
        path = Path(password_file)
        try:
            password = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TunesmithError(f"--password-file {path}: {exc.strerror}",
                                 hint="give a readable file whose first line is the password") from None
        if not password:
            raise TunesmithError(f"--password-file {path} is empty", hint="write the password into it")
        return Login(user, password)
    if is_loopback(host):
        return None
    return Login(user, secrets.token_urlsafe(12), generated=True)


def gradio_auth(login: Login | None) -> Callable[[str, str], bool] | None:
    return login.check if login else None


def _looks_like_path(value: str) -> bool:
    """A dataset or model entry that names a file rather than a registry name or hub id."""
    return value.startswith(("/", "~", ".")) or "\\" in value or ".." in Path(value).parts


@dataclass
class PathPolicy:
    """Confines paths typed into the UI to ``workdir`` (relative paths start there)."""

    workdir: Path
    allow_outside: bool = False

    def resolve(self, value: str | Path, what: str) -> Path:
        """The absolute path for ``value`` (relative to workdir), or PathRefused when it leaves workdir."""
        raw = Path(os.path.expanduser(str(value).strip()))
        path = (raw if raw.is_absolute() else self.workdir / raw).resolve()  # '..' and symlinks resolved
        if not self.allow_outside and not path.is_relative_to(self.workdir.resolve()):
            raise PathRefused(f"{what} {str(value)!r} is outside the work folder {self.workdir}",
                              hint="use a path inside it, or start the UI with --allow-outside-workdir")
        return path

    def check_config(self, flat: dict[str, Any]) -> None:
        """Every path-valued key of a config the UI is about to run (raises PathRefused)."""
        for key in PATH_KEYS:
            value = flat.get(key)
            if isinstance(value, str) and value.strip() and not (key == "resume_from_checkpoint"
                                                                 and value in ("last", "latest", "true", "True")):
                self.resolve(value, f"'{key}'")
        for key in DATASET_KEYS:
            for value in flat.get(key) or []:
                if isinstance(value, str) and _looks_like_path(value):
                    self.resolve(value, f"'{key}'")
