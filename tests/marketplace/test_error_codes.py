"""One registry of error codes: every code the node can send rebuilds as its own class on a
client, defined under `marketplace/` (issue 10)."""

from __future__ import annotations

import importlib
import pkgutil

import httpx
import pytest

import node
import worker
from marketplace.codes import all_codes, from_code
from marketplace.errors import (
    Conflict,
    Forbidden,
    InsufficientStorage,
    MarketplaceError,
    NotLeaseHolder,
    StaleAttempt,
    UpstreamUnavailable,
)
from marketplace.sdk.http import error_from_response
from node.errors import _HTTP_CODES

# Codes the node's exception handlers write without raising a class.
HANDLER_CODES = {
    "VALIDATION_ERROR",
    "INVALID_QUERY",
    "INVALID_BODY",
    "INTERNAL_ERROR",
    "HTTP_ERROR",
}


def _every_subclass(cls: type[MarketplaceError]) -> set[type[MarketplaceError]]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub, *_every_subclass(sub)}
    return out


def _node_error_classes() -> set[type[MarketplaceError]]:
    """Every error class reachable once every module of the node and the provider daemon
    is imported."""
    for package in (node, worker):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if ".migrations" not in info.name and ".executors.yolo" not in info.name:
                importlib.import_module(info.name)
    return _every_subclass(MarketplaceError)


def test_every_class_the_node_can_raise_is_in_the_registry_under_marketplace():
    registry = all_codes()
    for cls in _node_error_classes():
        if "code" not in cls.__dict__:
            continue  # inherits its parent's code (the parent is checked)
        assert cls.__module__.startswith("marketplace."), f"{cls} is defined outside marketplace/"
        assert registry[cls.code] is cls, cls.code


@pytest.mark.parametrize(
    "code", sorted(set(all_codes()) | HANDLER_CODES | set(_HTTP_CODES.values()))
)
def test_from_code_rebuilds_the_class_of_every_code(code):
    cls = all_codes()[code]
    err = from_code(code, "message", cls.status)
    assert err.code == code and err.message == "message"
    if cls.status >= 500 and not issubclass(cls, UpstreamUnavailable):
        # a server-side failure that is not meant to be retried on the node (CORRUPT_BLOCK)
        # is still one a client retries: it keeps its code on an UpstreamUnavailable
        assert type(err) is UpstreamUnavailable and err.status == cls.status
    else:
        assert type(err) is cls


def test_lease_lost_answers_are_conflicts_the_daemon_catches():
    assert isinstance(from_code("NOT_LEASE_HOLDER", "x", 409), Conflict)
    assert isinstance(from_code("NOT_LEASE_HOLDER", "x", 409), StaleAttempt)
    assert isinstance(from_code("PROVIDER_NOT_REGISTERED", "x", 403), Forbidden)


def test_a_5xx_keeps_its_code_and_stays_retryable():
    resp = httpx.Response(
        507,
        json={"error": {"code": "INSUFFICIENT_STORAGE", "message": "disk full"}},
        request=httpx.Request("POST", "http://node/api/v0/add"),
    )
    err = error_from_response(resp)
    assert isinstance(err, InsufficientStorage) and isinstance(err, UpstreamUnavailable)
    odd = httpx.Response(502, text="bad gateway", request=httpx.Request("GET", "http://node/x"))
    assert isinstance(error_from_response(odd), UpstreamUnavailable)


def test_an_unknown_code_keeps_its_code_and_status():
    err = from_code("SOMETHING_NEW", "x", 418)
    assert type(err) is MarketplaceError and (err.code, err.status) == ("SOMETHING_NEW", 418)


def test_two_classes_cannot_share_a_code():
    with pytest.raises(TypeError):
        type("Again", (Conflict,), {"code": NotLeaseHolder.code})
