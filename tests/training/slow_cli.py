"""`qa-assistant` with slow epochs, so a test can SIGKILL it at a chosen point.

Usage: `python -m tests.training.slow_cli ARGS...` — the same arguments as
`qa-assistant`. Tiny test models finish an epoch in milliseconds; this driver
sleeps after each saved epoch (`QA_TEST_EPOCH_SLEEP`, seconds) and, when
`QA_TEST_PAUSE_IN_SAVE` names an epoch count, stops inside that snapshot's
save — files written, rename not yet done — so the kill lands mid-write.
Sleeping changes no number: the run is otherwise exactly the CLI's.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from qa_assistant import cli
from qa_assistant.training import resume

_sleep = float(os.environ.get("QA_TEST_EPOCH_SLEEP", "0.5"))
_pause_at = int(os.environ.get("QA_TEST_PAUSE_IN_SAVE", "0"))
_save = resume.TrainingState._save
_end = resume.TrainingState.on_epoch_end
_rename = Path.rename


def _slow_end(self: resume.TrainingState, epoch: int, logs: dict | None = None) -> None:
    _end(self, epoch, logs)
    time.sleep(_sleep)


def _paused_save(self: resume.TrainingState, epochs_done: int) -> None:
    if epochs_done != _pause_at:
        _save(self, epochs_done)
        return

    def rename_later(path: Path, target: Path) -> Path:
        print(f"paused before renaming {path}", flush=True)
        time.sleep(600)  # the test kills us here
        return _rename(path, target)

    Path.rename = rename_later
    try:
        _save(self, epochs_done)
    finally:
        Path.rename = _rename


resume.TrainingState.on_epoch_end = _slow_end
resume.TrainingState._save = _paused_save

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
