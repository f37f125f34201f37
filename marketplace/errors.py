"""The one error family of the domain.

Every expected failure is a `MarketplaceError` carrying an HTTP status and a stable,
machine-readable code. The node renders it in the envelope of the API dialect that was
called; clients (SDK, provider daemon) rebuild it from a response with `from_code`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MarketplaceError(Exception):
    """Base of all domain errors: `status` is the HTTP status, `code` a stable identifier."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "BAD_REQUEST"

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        super().__init__(message or self.default_message())
        self.message = message or self.default_message()
        self.details = details

    @classmethod
    def default_message(cls) -> str:
        return cls.code.replace("_", " ").capitalize()


class ValidationFailed(MarketplaceError):
    status = 422
    code = "VALIDATION_ERROR"


class UnsupportedModel(ValidationFailed):
    """A model name no Ultralytics definition answers to (or a task it lacks)."""

    code = "UNSUPPORTED_MODEL"


class UnsupportedExportFormat(ValidationFailed):
    """An export format providers cannot produce offline."""

    code = "UNSUPPORTED_EXPORT_FORMAT"


class BadQuery(MarketplaceError):
    """A query parameter is malformed (seed 002 answers 400 for these)."""

    status = 400
    code = "INVALID_QUERY"


class Unauthorized(MarketplaceError):
    status = 401
    code = "UNAUTHORIZED"


class InvalidCredentials(Unauthorized):
    code = "INVALID_CREDENTIALS"


class InvalidToken(Unauthorized):
    code = "INVALID_TOKEN"


class TokenExpired(Unauthorized):
    code = "TOKEN_EXPIRED"


class RefreshTokenReused(Unauthorized):
    """A revoked refresh token came back: treated as theft, the user's sessions end."""

    code = "REFRESH_TOKEN_REUSED"


class InvalidApiKey(Unauthorized):
    code = "INVALID_API_KEY"


class InvalidSignature(Unauthorized):
    code = "INVALID_SIGNATURE"


class NonceInvalid(Unauthorized):
    """A sign-in nonce that was never issued, is already used, or has expired."""

    code = "NONCE_INVALID"


class SiweDomainMismatch(Unauthorized):
    code = "SIWE_DOMAIN_MISMATCH"


class SiweChainMismatch(Unauthorized):
    code = "SIWE_CHAIN_MISMATCH"


class SiweExpired(Unauthorized):
    code = "SIWE_EXPIRED"


class SiweNotYetValid(Unauthorized):
    code = "SIWE_NOT_YET_VALID"


class Forbidden(MarketplaceError):
    status = 403
    code = "FORBIDDEN"


class NotFound(MarketplaceError):
    status = 404
    code = "NOT_FOUND"


class JobNotFound(NotFound):
    code = "JOB_NOT_FOUND"

    @classmethod
    def default_message(cls) -> str:
        return "Job not found"


class WorkspaceNotFound(NotFound):
    code = "WORKSPACE_NOT_FOUND"

    @classmethod
    def default_message(cls) -> str:
        return "Workspace not found"


class ApiKeyNotFound(NotFound):
    code = "API_KEY_NOT_FOUND"

    @classmethod
    def default_message(cls) -> str:
        return "API key not found"


class MemberNotFound(NotFound):
    code = "MEMBER_NOT_FOUND"

    @classmethod
    def default_message(cls) -> str:
        return "Member not found"


class UserNotFound(NotFound):
    code = "USER_NOT_FOUND"

    @classmethod
    def default_message(cls) -> str:
        return "User not found"


class Conflict(MarketplaceError):
    status = 409
    code = "CONFLICT"


class AlreadyMember(Conflict):
    code = "ALREADY_MEMBER"


class LastOwner(Conflict):
    """A workspace must keep at least one owner."""

    code = "LAST_OWNER"


class InvalidTransition(Conflict):
    code = "INVALID_TRANSITION"


class LeaseExpired(Conflict):
    code = "LEASE_EXPIRED"


class StaleAttempt(Conflict):
    code = "STALE_ATTEMPT"


class RetryLimitReached(Conflict):
    code = "RETRY_LIMIT_REACHED"


class NotAwaitingFunding(Conflict):
    """A funding call was asked for a job that is not waiting for its escrow deposit."""

    code = "NOT_AWAITING_FUNDING"


class CancelOnChain(Conflict):
    """A funded job's deposit is held by the escrow: only the requester's on-chain `cancel`
    refunds it (the node then marks the job cancelled from the JobSettled event)."""

    code = "CANCEL_ON_CHAIN"


class PayloadTooLarge(MarketplaceError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class RateLimited(MarketplaceError):
    status = 429
    code = "RATE_LIMIT_EXCEEDED"


class UpstreamUnavailable(MarketplaceError):
    """An engine behind an adapter (Kubo, chain RPC, Docker) did not answer."""

    status = 503
    code = "UPSTREAM_UNAVAILABLE"


class ChainError(MarketplaceError):
    """A contract call reverted; `code` is the contract's custom error name when known."""

    status = 409
    code = "CHAIN_REVERT"

    def __init__(
        self, message: str | None = None, *, error_name: str | None = None, details: Any = None
    ) -> None:
        super().__init__(message, details=details)
        self.error_name = error_name


class InvalidCursor(BadQuery):
    """A pagination cursor that this node did not issue for this sort (seed 002: 400)."""

    code = "INVALID_CURSOR"


class WorkspaceMismatch(MarketplaceError):
    """A body's `workspace_id` names another workspace than the URL (seed 001: 400)."""

    status = 400
    code = "WORKSPACE_MISMATCH"


def _all_subclasses(cls: type[MarketplaceError]) -> list[type[MarketplaceError]]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def from_code(code: str, message: str, status: int) -> MarketplaceError:
    """Rebuild the domain error a response described (used by clients)."""
    for cls in _all_subclasses(MarketplaceError):
        if cls.code == code:
            return cls(message)
    err = MarketplaceError(message)
    err.status = status  # type: ignore[misc]
    err.code = code  # type: ignore[misc]
    return err
