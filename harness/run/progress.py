"""Progress for long work: a rich bar in a terminal, plain periodic lines in CI and pipes."""

from __future__ import annotations

import os
import sys
import time
from typing import Protocol


class Progress(Protocol):
    def start(self, name: str, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def finish(self) -> None: ...


class QuietProgress:
    """No output (library use, tests)."""

    def start(self, name: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


def make_progress(console=None) -> PlainProgress | RichProgress:
    interactive = sys.stderr.isatty() and not os.environ.get("CI")
    return RichProgress(console) if interactive else PlainProgress()


class PlainProgress:
    """One line at start, every ~10% or 30 s, and at the end."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr

    def start(self, name, total):
        self.name, self.total, self.done = name, total, 0
        self.started = self.last = time.monotonic()
        self.next_mark = max(1, total // 10)
        print(f"[{name}] {total} to run", file=self.stream, flush=True)

    def advance(self, n=1):
        self.done += n
        now = time.monotonic()
        if self.done >= self.next_mark or now - self.last > 30:
            self.next_mark = self.done + max(1, self.total // 10)
            self.last = now
            print(f"[{self.name}] {self.done}/{self.total} ({now - self.started:.0f}s)", file=self.stream, flush=True)

    def finish(self):
        print(
            f"[{self.name}] done {self.done}/{self.total} in {time.monotonic() - self.started:.0f}s",
            file=self.stream,
            flush=True,
        )


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
        self._task = self._progress.add_task(name, total=total)

    def advance(self, n=1):
        if self._task is not None:
            self._progress.advance(self._task, n)

    def finish(self):
        self._progress.refresh()

    def stop(self):
        self._progress.stop()
