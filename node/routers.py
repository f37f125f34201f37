"""Every router the node mounts, in one list (one line per dialect or domain)."""

from fastapi import APIRouter

from node.auth.router import router as auth_router
from node.datasets.router import router as datasets_router

ROUTERS: list[APIRouter] = [
    auth_router,
    datasets_router,
]
