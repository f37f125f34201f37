"""The one error family of the domain.

Every expected failure is a `MarketplaceError` carrying an HTTP status and a stable,
machine-readable code. The node renders it in the envelope of the API dialect that was
called; clients (SDK, provider daemon) rebuild it from a response with
`marketplace.codes.from_code`.

Every class that names a `code` registers it here when it is defined; two classes may not
share a code. The classes live under `marketplace/` only (this module and the content and
datasets domains' `errors` modules), so any client that imports `marketplace.codes` can
rebuild every code the node emits.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

_REGISTRY: dict[str, type[MarketplaceError]] = {}


class MarketplaceError(Exception):
    """Base of all domain errors: `status` is the HTTP status, `code` a stable identifier."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "BAD_REQUEST"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            known = _REGISTRY.get(cls.code)
            same = known is not None and (known.__module__, known.__qualname__) == (
                cls.__module__,
                cls.__qualname__,
            )
            if known is not None and not same:
                raise TypeError(f"error code {cls.code} is already {known.__qualname__}")
            _REGISTRY[cls.code] = cls

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


class InvalidField(ValidationFailed):
    """A field is missing, repeated, unknown or out of range (`details.field` names it): a
    dataset upload's form field or a training spec's, whichever dialect carried it."""

    code = "INVALID_FIELD"


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


class NotSupported(MarketplaceError):
    """A well-formed request for something this node does not do (IPNS names, a codec it
    does not store): 501, never retried."""

    status = 501
    code = "NOT_SUPPORTED"


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


class NotFunded(Conflict):
    """A job was asked to be confirmed (TrainChain's `POST /jobs/confirm/:jobId`) while the
    escrow holds no deposit for it yet (`details.missing` says what is missing)."""

    code = "NOT_FUNDED"


class JobFunded(Conflict):
    """Deleting a job that is no longer unfunded: its reward is (or was) in the escrow."""

    code = "JOB_FUNDED"


class JobNotClaimable(Conflict):
    """A provider chose a job it cannot claim now (leased, not open, not its type or
    export format, or the provider is at its `max_concurrent`)."""

    code = "JOB_NOT_CLAIMABLE"


class PayloadTooLarge(MarketplaceError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class RetryLater(MarketplaceError):
    """A refusal that passes with time: rendered with a `Retry-After` header (seconds)."""

    def __init__(
        self, message: str | None = None, *, retry_after_seconds: float = 1.0, details: Any = None
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after_seconds = max(1, math.ceil(retry_after_seconds))

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class RateLimited(RetryLater):
    """Too many requests from one client address or for one account (token buckets)."""

    status = 429
    code = "RATE_LIMIT_EXCEEDED"


class JsonTooDeep(MarketplaceError):
    """A JSON body (or JSON form field) nested deeper than the node parses."""

    status = 400
    code = "JSON_TOO_DEEP"


class InvalidJson(MarketplaceError):
    """A JSON body Python would parse but that is not interchange JSON (NaN, Infinity, a
    number past the float range, an unpaired surrogate)."""

    status = 400
    code = "INVALID_JSON"


class RequestTimeout(MarketplaceError):
    """The request body stalled: no bytes arrived for longer than the node waits."""

    status = 408
    code = "REQUEST_TIMEOUT"


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


def registered() -> dict[str, type[MarketplaceError]]:
    """Every code defined so far and its class (see `marketplace.codes` for all of them)."""
    return dict(_REGISTRY)


# -- authorization (issue 9) -------------------------------------------------------------


class NotAdmitted(Forbidden):
    """A provider acted on a private job of a workspace pool it is not admitted to (it
    presented no live `provider` key of that workspace)."""

    code = "NOT_ADMITTED"


class PinInUse(Conflict):
    """A pin behind a live job's dataset, metadata or result cannot be removed."""

    code = "PIN_IN_USE"


# -- the provider contract (issue 10) ------------------------------------------------------


class ProviderNotRegistered(Forbidden):
    """A provider route called by a wallet that never registered (`POST /v1/providers`)."""

    code = "PROVIDER_NOT_REGISTERED"


class NotLeaseHolder(StaleAttempt):
    """A write under a lease another provider holds: the caller's lease is lost."""

    code = "NOT_LEASE_HOLDER"


# -- codes the node's handlers emit without raising (issue 10) ------------------------------


class InvalidBody(MarketplaceError):
    """A request body that fails validation on `/v1` (seed 002 answers 400)."""

    status = 400
    code = "INVALID_BODY"


class MethodNotAllowed(MarketplaceError):
    status = 405
    code = "METHOD_NOT_ALLOWED"


class HttpError(MarketplaceError):
    """An HTTP status the node has no more specific code for."""

    code = "HTTP_ERROR"


class InternalError(UpstreamUnavailable):
    """A bug on the node (logged there with the request id); clients retry it as any 5xx."""

    status = 500
    code = "INTERNAL_ERROR"


class BadUpload(MarketplaceError):
    """A Kubo-style `add` upload with an unsafe or contradictory path."""

    status = 400
    code = "BAD_UPLOAD"


class UpstreamRejected(MarketplaceError):
    """The production IPFS daemon answered 4xx: a CID or parameter it did not accept."""

    status = 400
    code = "UPSTREAM_REJECTED"


class UpstreamTimeout(UpstreamUnavailable):
    """A call to an engine behind an adapter ran past its timeout."""

    code = "UPSTREAM_TIMEOUT"


class InsufficientStorage(UpstreamUnavailable):
    """The node's disk is full: nothing was stored; the same request may succeed later
    (retryable, like every 5xx)."""

    status = 507
    code = "INSUFFICIENT_STORAGE"


class WebhookNotFound(NotFound):
    code = "WEBHOOK_NOT_FOUND"

    @classmethod
    def default_message(cls) -> str:
        return "Webhook not found"


class TemplateNotFound(NotFound):
    """No template with that id (seed 003 job templates) or name (seed 004 transformer
    templates) in the caller's workspace."""

    code = "TEMPLATE_NOT_FOUND"

    @classmethod
    def default_message(cls) -> str:
        return "Template not found"


class WebhookTargetRefused(MarketplaceError):
    """A webhook URL this node will not call: not http(s), or (in production, unless
    allowed) an address in a private, loopback or link-local range."""

    status = 400
    code = "WEBHOOK_TARGET_REFUSED"


class NotRequester(Forbidden):
    """A requester-only action signed or named by another address than the job's
    requester."""

    code = "NOT_REQUESTER"


class AddressMismatch(Forbidden):
    """The address a TrainChain contributor route names is not the signed-in wallet's."""

    code = "ADDRESS_MISMATCH"


class ModelNotFound(NotFound):
    """The job has no result (trained model) yet, or its files are not in the store."""

    code = "MODEL_NOT_FOUND"


class BatchNotFound(NotFound):
    """No batch of seed 004 jobs with that id that the caller may read."""

    code = "BATCH_NOT_FOUND"


class ArchiveNotFound(NotFound):
    """The job has no result archive yet (it has not completed), or its files are gone."""

    code = "ARCHIVE_NOT_FOUND"
