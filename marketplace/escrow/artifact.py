"""The compiled JobEscrow artifact, shipped as package data (written by `npm run compile`)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def load_artifact() -> dict[str, Any]:
    """abi, bytecode, deployedBytecode, compiler, metadata and standardJsonInput."""
    text = resources.files(__package__).joinpath("artifacts/JobEscrow.json").read_text("utf-8")
    return json.loads(text)
