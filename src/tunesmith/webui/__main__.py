"""``python -m tunesmith.webui [--host H] [--port P] [--workdir DIR] [--jobs-dir DIR] [--lang en|zh]``."""

from __future__ import annotations

import argparse

from tunesmith.utils.quiet import quiet_library_noise

quiet_library_noise()  # before gradio, transformers or peft load (the Chat tab loads adapters)

from tunesmith.webui.app import launch  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tunesmith webui", description="Start the tunesmith web UI.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1 keeps it local)")
    parser.add_argument("--port", type=int, default=7860, help="port")
    parser.add_argument("--workdir", default=".", help="folder that relative paths (saves/, data/) start from")
    parser.add_argument("--jobs-dir", default=None, help="where training jobs are recorded "
                        "(default: ~/.cache/tunesmith/webui/jobs)")
    parser.add_argument("--lang", choices=("en", "zh"), default="en", help="language shown first")
    parser.add_argument("--password-file", default=None, help="file holding the login password (else "
                        "$TUNESMITH_WEBUI_PASSWORD; off loopback a token is generated and printed)")
    parser.add_argument("--allow-outside-workdir", action="store_true", help="let paths typed into the UI "
                        "point outside --workdir")
    args = parser.parse_args(argv)
    launch(host=args.host, port=args.port, workdir=args.workdir, jobs_dir=args.jobs_dir, lang=args.lang,
           password_file=args.password_file, allow_outside_workdir=args.allow_outside_workdir)


if __name__ == "__main__":
    main()
