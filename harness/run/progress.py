"""Progress for long work: a rich bar in a terminal, plain periodic lines in CI and pipes."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Protocol


class Progress(Protocol):
    """Counts of a long phase; `detail` (e.g. "loss 0.41, 820 tokens/s") is shown beside the latest count."""

    def start(self, name: str, total: int) -> None: ...
    def advance(self, n: int = 1, detail: str | None = None) -> None: ...
    def finish(self) -> None: ...


class QuietProgress:
    """No output (library use, tests)."""

    def start(self, name: str, total: int) -> None:
        pass

    def advance(self, n: int = 1, detail: str | None = None) -> None:
        pass

    def finish(self) -> None:
        pass


EVERY_S = 30.0  # default of HARNESS_PROGRESS_EVERY_S: the longest silence of a plain (non-terminal) run


def make_progress(console=None) -> PlainProgress | RichProgress:
    interactive = sys.stderr.isatty() and not os.environ.get("CI")
    if interactive:
        return RichProgress(console)
    try:
        every = float(os.environ.get("HARNESS_PROGRESS_EVERY_S", EVERY_S))
    except ValueError:
        every = EVERY_S
    return PlainProgress(every_s=every if every > 0 else EVERY_S)


class PlainProgress:
    """One line at start, every ~10% with the time left, and at the end; while one slow item holds the rest up, a
    line at least every `every_s` seconds still says the run is alive."""

    def __init__(self, stream=None, every_s: float = EVERY_S):
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self._lock = threading.Lock()
        self._beat: threading.Thread | None = None
        self._running = False

    def _line(self, text: str) -> None:
        with self._lock:
            print(f"[{self.name}] {text}", file=self.stream, flush=True)
            self.last = time.monotonic()

    def _status(self, now: float) -> str:
        spent = now - self.started
        left = f", about {spent / self.done * (self.total - self.done):.0f}s left" if 0 < self.done < self.total else ""
        detail = f", {self.detail}" if self.detail else ""
        return f"{self.done}/{self.total} ({spent:.0f}s{left}{detail})"

    def _heartbeat(self) -> None:
        while self._running:
            time.sleep(min(1.0, self.every_s / 4))
            now = time.monotonic()
            if self._running and now - self.last >= self.every_s:
                self._line(f"still working: {self._status(now)}")

    def start(self, name, total):
        self.name, self.total, self.done, self.detail = name, total, 0, None
        self.started = self.last = time.monotonic()
        self.next_mark = max(1, total // 10)
        self._line(f"{total} to run")
        self._running = True
        if self._beat is None or not self._beat.is_alive():
            self._beat = threading.Thread(target=self._heartbeat, name="progress-heartbeat", daemon=True)
            self._beat.start()

    def advance(self, n=1, detail=None):
        self.done += n
        self.detail = detail or self.detail
        now = time.monotonic()
        if self.done >= self.next_mark or now - self.last > self.every_s:
            self.next_mark = self.done + max(1, self.total // 10)
            self._line(self._status(now))

    def finish(self):
        self._running = False
        self._line(f"done {self.done}/{self.total} in {time.monotonic() - self.started:.0f}s")


class RichProgress:
    def __init__(self, console=None):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task = None

    def start(self, name, total):
        if self._task is None:
            self._progress.start()
        self._name = name
        self._task = self._progress.add_task(name, total=total)

    def advance(self, n=1, detail=None):
        if self._task is not None:
            self._progress.advance(self._task, n)
            if detail:
                self._progress.update(self._task, description=f"{self._name} ({detail})")

    def finish(self):
        self._progress.refresh()

    def stop(self):
        self._progress.stop()
