"""Rate limits: in-process token buckets keyed by rule and client address or account.

Each rule of `settings.rate_limits` (`"20/minute"`) is a bucket of 20 tokens refilled
evenly over a minute; a request takes one token or is refused with 429
`RATE_LIMIT_EXCEEDED` and `Retry-After` (the seconds until a token is back), rendered in
the envelope of the dialect that was called.

Limits are per replica: buckets live in this process's memory, so N replicas behind a
balancer let a client through N times as often. That is the intended trade (no shared
store on the hot path); the per-account limits still bound password guessing to N times
the rate. At most `max_tracked_keys` buckets are kept; the least recently used are
dropped first (a dropped bucket restarts full, which only ever errs towards allowing).

The client address is the ASGI `client` host. uvicorn rewrites it from
`X-Forwarded-For` only for its trusted proxies (the `FORWARDED_ALLOW_IPS` environment
variable, loopback by default), so a remote client cannot pick its own key; a reverse
proxy on the same machine passes the real client address through.

Routers declare per-client rules as dependencies
(`Depends(per_client("login_per_client"))`);
per-account rules are checked where the account is known (`limiter(request).hit(...)`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from fastapi import Request

from marketplace.errors import RateLimited, Unauthorized
from node.config import RateLimits, parse_rate
from node.openapi import raises


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets for the rules of one `RateLimits` section."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = limits.enabled
        self.max_keys = limits.max_tracked_keys
        self._rules: dict[str, tuple[int, float]] = {
            name: parse_rate(value)
            for name, value in limits.model_dump().items()
            if isinstance(value, str)
        }
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def _bucket(self, rule: str, key: str, now: float) -> tuple[_Bucket, int, float]:
        burst, period = self._rules[rule]
        rate = burst / period
        bucket = self._buckets.get((rule, key))
        if bucket is None:
            bucket = _Bucket(float(burst), now)
            self._buckets[(rule, key)] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end((rule, key))
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
        return bucket, burst, rate

    def hit(self, rule: str, key: str) -> None:
        """Take a token from `rule`'s bucket for `key`; `RateLimited` if there is none."""
        self._take(rule, key, consume=True)

    def check(self, rule: str, key: str) -> None:
        """Raise `RateLimited` if `key` has no token left, without taking one (used with
        `hit` after a failure, for limits that count failures only)."""
        self._take(rule, key, consume=False)

    @contextmanager
    def failures(self, rule: str, key: str) -> Iterator[None]:
        """Count the `Unauthorized` raised inside as one of `key`'s failures under `rule`;
        refuse at once (429) while `key` has no failure left. Successes cost nothing, so
        a legitimate user is not locked out by their own sign-ins."""
        self.check(rule, key)
        try:
            yield
        except Unauthorized:
            with suppress(RateLimited):
                self.hit(rule, key)
            raise

    def _take(self, rule: str, key: str, *, consume: bool) -> None:
        if not self.enabled:
            return
        with self._lock:
            bucket, _, rate = self._bucket(rule, key[:256], self._clock())
            if bucket.tokens >= 1.0:
                if consume:
                    bucket.tokens -= 1.0
                return
            wait = (1.0 - bucket.tokens) / rate
        raise RateLimited(
            "Too many requests; retry later",
            retry_after_seconds=wait,
            details={"limit": rule},
        )


def limiter(request: Request) -> RateLimiter:
    return request.app.state.runtime.rate_limiter


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def per_client(rule: str) -> Callable[[Request], Awaitable[None]]:
    """A route dependency taking one token of `rule` for the caller's address. It is
    async so that a refusal costs no worker thread."""

    @raises(RateLimited)
    async def dependency(request: Request) -> None:
        limiter(request).hit(rule, client_address(request))

    dependency.__name__ = f"rate_limit_{rule}"
    return dependency
