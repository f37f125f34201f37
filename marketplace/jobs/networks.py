"""Provider networks (seed 003's `provider` of a job: `akash`, `render`, `default`...):
the one rule for their names.

A provider daemon declares the networks it serves (`dcm provider run --pool akash`,
repeatable; `default` when none is named) and a job of a network is claimed only by one
of them. Names are case-insensitive (stored lower-case): a letter or digit, then up to 63
letters, digits, `.`, `_` or `-`.

Not to be confused with a workspace's *private pool* (the providers a workspace admitted
with a `provider` API key): that decides who may be offered a job without escrow at all;
the network narrows it further to the providers of the job's network.
"""

from __future__ import annotations

import re

DEFAULT_NETWORK = "default"
MAX_NETWORKS = 32
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class InvalidNetwork(ValueError):
    """Not a network name."""


def network_name(value: object) -> str:
    """The canonical (lower-case) name, or InvalidNetwork."""
    if not isinstance(value, str):
        raise InvalidNetwork(f"a network name is a string, not {type(value).__name__}")
    name = value.strip().lower()
    if not _NAME.fullmatch(name):
        raise InvalidNetwork(
            f"not a network name (a letter or digit, then up to 63 of a-z 0-9 . _ -): "
            f"{value[:70]!r}"
        )
    return name
