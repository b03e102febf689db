"""Stop a training run cleanly on SIGTERM: save a checkpoint at the end of the current step, then end.

``kill -TERM PID`` (what the web UI's Stop button sends) would otherwise end the process mid-step
and lose everything since the last ``save_steps`` checkpoint. With this callback the Trainer finishes
the step it is in, writes ``checkpoint-N`` and leaves its loop normally, so the run still saves its
adapter, log and summary. A second SIGTERM while stopping ends the process at once. Ctrl-C (SIGINT)
keeps its usual meaning.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from transformers import TrainerCallback


class StopOnSignal(TrainerCallback):
    """Turn SIGTERM into 'save a checkpoint and stop after this step'."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.signum = signum
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        # A second signal should not wait for the step to finish.
        signal.signal(self.signum, self._previous if self._previous is not None else signal.SIG_DFL)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        # Signal handlers can only be set from the main thread (e.g. not when training runs in a worker).
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(self.signum, self._handle)
            self._installed = True

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.requested:
            control.should_save = True
            control.should_log = True
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self._installed and signal.getsignal(self.signum) == self._handle:
            signal.signal(self.signum, self._previous if self._previous is not None else signal.SIG_DFL)
        self._installed = False
