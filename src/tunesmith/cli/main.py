"""The ``tunesmith`` command: a thin Typer layer over the library.

Heavy libraries are imported inside commands, so ``tunesmith --help`` and config errors are instant.
Known errors print as one clear block; ``TUNESMITH_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import os
import sys

# OpenMP threads that spin while waiting collapse throughput when other work runs on the machine,
# and passive ones slow an idle machine by ~40% (see hardware.openmp_wait_policy). Decided before
# torch loads; a user's own OMP_WAIT_POLICY (or GOMP_SPINCOUNT) wins. Help screens load no torch, so
# they skip the 0.1 s CPU sample.
_help_only = len(sys.argv) < 2 or any(a in ("--help", "-h", "--version") for a in sys.argv[1:])
if not _help_only and "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    from tunesmith.utils.hardware import openmp_wait_policy

    if (_policy := openmp_wait_policy()) is not None:
        os.environ["OMP_WAIT_POLICY"] = _policy
        os.environ["TUNESMITH_OMP_AUTO"] = "1"  # ours, not the user's: `bench` gives its workers their own
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import typer  # noqa: E402

from tunesmith import __version__  # noqa: E402
from tunesmith.utils.quiet import quiet_library_noise  # noqa: E402

quiet_library_noise()  # known library noise, by exact message, before any library loads

app = typer.Typer(
    name="tunesmith",
    help="Fine-tune, evaluate, export and serve LLMs - fast on the hardware you have.\n\n"
    "Start with: tunesmith train examples/quickstart.yaml",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tunesmith {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """tunesmith: from a folder of examples to a tuned, evaluated, served model."""


def _register() -> None:
    # One module per command group; each exposes register(app).
    from tunesmith.cli import advise, bench, chat, data, data_tools, eval, export, serve, train, webui

    for module in (train, chat, data, data_tools, eval, advise, export, serve, webui, bench):
        module.register(app)


_register()


# Exit codes (the README's table): 0 done; 1 an unexpected error (a bug: the traceback is shown);
# 2 a problem the message explains (config, data, model, a full or unwritable disk); 130 interrupted.
EXIT_USER_ERROR, EXIT_INTERRUPTED = 2, 130


def error_block(title: str, message: str, hint: str | None) -> None:
    """Print one red block (title, message, how to fix) on stderr."""
    from rich.markup import escape
    from rich.panel import Panel

    from tunesmith.utils.console import err_console

    body = escape(message) + (f"\n\n[bold]How to fix:[/bold] {escape(hint)}" if hint else "")
    err_console.print(Panel(body, title=f"[bold red]{title}[/bold red]", title_align="left",
                            border_style="red", expand=False))
    err_console.print("[dim](set TUNESMITH_DEBUG=1 for the full traceback)[/dim]")


def main() -> None:
    """Entry point: run the app, turning known errors into one readable block."""
    from tunesmith.utils.errors import TunesmithError

    debug = os.environ.get("TUNESMITH_DEBUG") == "1"
    try:
        app()
    except TunesmithError as exc:
        if debug:
            raise
        error_block(exc.title, exc.message, exc.hint)
        sys.exit(exc.exit_code)
    except OSError as exc:  # a full disk, a read-only folder: the system's words and the path, no traceback
        if debug or exc.errno is None:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        error_block("System error", f"{exc.strerror}{where}",
                    "free disk space, or choose a folder you can write to (output_dir, export_dir)")
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
