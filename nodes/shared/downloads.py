"""A download seen from a node: the size announced on the node before the first byte, a byte
progress bar (and "12.3 MB / 418.0 MB" on the node) while it runs, and ComfyUI's cancel
stopping it (the partial file kept: the next run resumes)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import comfy.model_management as mm
import comfy.utils

from ...scoring.core.errors import Cancelled
from ...scoring.host.transfer import human

log = logging.getLogger("saiten")

STEP_S = 0.25
"""At most this often a bar update and a text line go to the browser."""


def _text(node_id: str | None, text: str) -> None:
    if node_id is None:
        return
    try:
        from server import PromptServer

        PromptServer.instance.send_progress_text(text, node_id)
    except Exception:  # no server (a test import): the log line is enough
        pass


class NodeDownload:
    """`progress`, `say` and `interrupted` for `scoring.host.download.fetch`, on node
    `node_id`."""

    def __init__(self, node_id: str | None) -> None:
        self.node_id = node_id
        self.interrupted: Callable[[], bool] = mm.processing_interrupted
        self._bar: Any = None
        self._last = 0.0

    def say(self, text: str) -> None:
        log.info("%s", text)
        _text(self.node_id, text.removeprefix("saiten: "))

    def progress(self, name: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if total and done < total and now - self._last < STEP_S:
            return
        self._last = now
        if total:
            if self._bar is None or self._bar.total != total:
                self._bar = comfy.utils.ProgressBar(total, node_id=self.node_id)
            self._bar.update_absolute(done, total)  # ComfyUI's cancel raises here
        _text(self.node_id, f"downloading {name}: {human(done)} / {human(total)}")

    def options(self) -> dict[str, Any]:
        return {"progress": self.progress, "say": self.say, "interrupted": self.interrupted}


@contextmanager
def cancel_is_interrupt() -> Iterator[None]:
    """A cancelled download ends the prompt as ComfyUI's own cancel does."""
    try:
        yield
    except Cancelled:
        raise mm.InterruptProcessingException() from None
