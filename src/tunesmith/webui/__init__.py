"""The web UI: a Gradio page over the CLI (``tunesmith webui``).

form.py (config form from the schema), jobs.py + runner.py (detached training jobs), commands.py
(other CLI commands in subprocesses), chat.py (the chat engine), views.py (what a job shows),
i18n.py (UI chrome in English and Chinese), ui.py + tab_*.py (the page), app.py (build and launch).
Nothing heavy is imported here: ``python -m tunesmith.webui.runner`` must start fast.
"""
