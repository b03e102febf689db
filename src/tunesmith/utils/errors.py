"""Named exceptions for problems a user can fix.

Each carries a message that names the value, the place (file, line, key) and the fix; the CLI
prints it as one block, without a traceback unless ``TUNESMITH_DEBUG=1``.
"""

from __future__ import annotations


class TunesmithError(Exception):
    """Base class: anything the user can fix by changing input, config or environment."""

    title = "Error"
    exit_code = 2  # the CLI's exit status for every error the user can fix (README: "Exit codes")

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nHow to fix: {self.hint}"


class ConfigError(TunesmithError):
    """The config (YAML or key=value overrides) is not well-formed; all problems listed at once."""

    title = "Config error"

    def __init__(self, problems: list[str], *, source: str | None = None) -> None:
        self.problems = problems
        where = f" in {source}" if source else ""
        lines = [f"Config is not well-formed{where}, found {len(problems)} problem(s):"]
        lines += [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


class DataFormatError(TunesmithError):
    """A dataset file or record is malformed: names the file, line/record and field."""

    title = "Data error"


class ModelLoadError(TunesmithError):
    """A model, adapter or tokenizer could not be found or loaded."""

    title = "Model error"


class TrainingError(TunesmithError):
    """Training cannot proceed (e.g. every label masked, loss became NaN)."""

    title = "Training error"


class MissingExtraError(TunesmithError):
    """An optional dependency is needed for this feature."""

    title = "Missing dependency"
