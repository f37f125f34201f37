"""The one registry of error codes: every code the node can send, mapped to its class.

Clients (the SDK, the provider daemon) rebuild the domain error a response described with
`from_code`, so `from_code("NOT_LEASE_HOLDER", ...)` is a `NotLeaseHolder`, which the
daemon's `except Conflict` catches. The classes are defined in `marketplace.errors` and in
the content and datasets domains' `errors` modules; importing this module imports them
all, so the registry is complete whatever the client imported before.
"""

from __future__ import annotations

import marketplace.content.errors
import marketplace.datasets.errors
import marketplace.errors
from marketplace.errors import MarketplaceError, UpstreamUnavailable, registered

__all__ = ["all_codes", "error_class", "from_code"]

# The modules whose classes register codes (imported above for that effect).
ERROR_MODULES = (marketplace.errors, marketplace.content.errors, marketplace.datasets.errors)


def all_codes() -> dict[str, type[MarketplaceError]]:
    """Every registered code and its class."""
    return {MarketplaceError.code: MarketplaceError, **registered()}


def error_class(code: str) -> type[MarketplaceError] | None:
    return all_codes().get(code)


def from_code(code: str, message: str, status: int) -> MarketplaceError:
    """Rebuild the domain error a response described. An unknown code keeps its code and
    status on a plain `MarketplaceError` (an `UpstreamUnavailable` for a 5xx, which clients
    retry)."""
    cls = error_class(code)
    if cls is not None and (status < 500 or issubclass(cls, UpstreamUnavailable)):
        return cls(message)
    base = UpstreamUnavailable if status >= 500 else MarketplaceError
    err = base(message)
    err.status = status  # type: ignore[misc]
    err.code = code  # type: ignore[misc]
    return err
