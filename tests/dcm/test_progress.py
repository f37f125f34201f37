"""Progress bars draw on a terminal only: piped or logged output stays clean (issue 11)."""

from __future__ import annotations

import io
import sys

import pytest

from dcm.progress import progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with progress("adding", 100) as bar:
        bar.update(50)
        bar.update(100)
    assert not bar.shown and err.getvalue() == ""


def test_a_bar_with_its_label_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    err = _Tty()
    monkeypatch.setattr(sys, "stderr", err)
    with progress("adding", 100) as bar:
        bar.update(50)
        bar.update(100, 100)
    assert bar.shown and "adding" in err.getvalue() and "100%" in err.getvalue()
