"""Wallet users are created once per address, even when two first uses race."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from node.auth import repository
from node.db import session_scope
from node.models.auth import User

ADDRESS = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"


def test_lost_race_returns_the_winners_row(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    with session_scope(app.state.runtime.sessionmaker) as session:
        winner = repository.get_or_create_wallet_user(session, ADDRESS)
    real = repository.user_by_address
    calls = []

    def stale_first_lookup(session: object, address: str) -> User | None:
        # The first lookup ran before the winner committed: it saw no row.
        calls.append(address)
        return None if len(calls) == 1 else real(session, address)  # type: ignore[arg-type]

    monkeypatch.setattr(repository, "user_by_address", stale_first_lookup)
    with session_scope(app.state.runtime.sessionmaker) as session:
        user = repository.get_or_create_wallet_user(session, ADDRESS)
        assert user.id == winner.id
        session.add(User(username="after-the-race"))  # the transaction is still usable
    with session_scope(app.state.runtime.sessionmaker) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 2
