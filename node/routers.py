"""Every router the node mounts, in one list (one line per dialect or domain)."""

from fastapi import APIRouter

ROUTERS: list[APIRouter] = []
