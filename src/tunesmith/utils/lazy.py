"""One helper to import optional heavy dependencies and say which extra installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from tunesmith.utils.errors import MissingExtraError


def require(module: str, *, extra: str | None = None, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise a MissingExtraError naming the pip command that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = package or module.split(".")[0]
        fix = f"pip install 'tunesmith[{extra}]'" if extra else f"pip install {pkg}"
        raise MissingExtraError(f"This feature needs the package '{pkg}' ({exc}).", hint=fix) from exc
