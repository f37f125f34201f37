"""Auth routes: `/auth/login` exactly as seed 001 shows."""

from __future__ import annotations

from fastapi import APIRouter

from node.auth import service
from node.auth.schemas import LoginRequest, TokenPair
from node.deps import SessionDep, SettingsDep

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login", response_model=TokenPair)
def login(body: LoginRequest, session: SessionDep, settings: SettingsDep) -> dict[str, str]:
    return service.login(session, settings, body.username, body.password)
