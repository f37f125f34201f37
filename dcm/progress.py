"""Progress bars for long commands (uploads, adds, downloads): click's bar on stderr when
stderr is a terminal, nothing at all otherwise (pipes, logs and CI stay clean)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click


class Bar:
    """`update(done, total)` with absolute figures; a no-op off a terminal."""

    def __init__(self, bar: Any | None) -> None:
        self._bar = bar

    @property
    def shown(self) -> bool:
        """Whether a bar is drawn (stderr is a terminal)."""
        return self._bar is not None

    def update(self, done: int, total: int | None = None) -> None:
        if self._bar is None:
            return
        if total is not None:
            self._bar.length = max(total, 1)
        self._bar.update(done - self._bar.pos)


@contextmanager
def progress(label: str, total: int | None = None) -> Iterator[Bar]:
    if not sys.stderr.isatty():
        yield Bar(None)
        return
    with click.progressbar(
        length=max(total or 1, 1), label=label, file=sys.stderr, show_pos=False
    ) as bar:
        yield Bar(bar)
