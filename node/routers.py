"""Every router the node mounts, in one list (one line per dialect or domain)."""

from fastapi import APIRouter

from node.auth.router import router as auth_router
from node.chain.router import router as chain_router

ROUTERS: list[APIRouter] = [
    auth_router,
    chain_router,
]
