"""The claim notifier as the provider routes reach it."""

from __future__ import annotations

from fastapi import Request

from node.providers.notifier import JobNotifier


def notifier_of(request: Request) -> JobNotifier:
    return request.app.state.runtime.notifier
