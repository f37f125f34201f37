"""Every router the node mounts, in one list (one line per dialect or domain)."""

from fastapi import APIRouter

from node.auth.router import router as auth_router
from node.content.router_gateway import router as ipfs_gateway_router
from node.content.router_kubo import router as kubo_rpc_router
from node.datasets.router import router as datasets_router

ROUTERS: list[APIRouter] = [
    auth_router,
    kubo_rpc_router,
    ipfs_gateway_router,
    datasets_router,
]
