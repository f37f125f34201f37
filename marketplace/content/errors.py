"""Domain errors of content addressing and block stores (subclasses of the one
`MarketplaceError` family, so every dialect renders them with a stable code)."""

from __future__ import annotations

from marketplace.errors import MarketplaceError, NotFound, UpstreamUnavailable


class InvalidCid(MarketplaceError):
    status = 400
    code = "INVALID_CID"


class InvalidBlock(MarketplaceError):
    """Bytes that are not a valid dag-pb/UnixFS node or CAR file."""

    status = 400
    code = "INVALID_BLOCK"


class ContentNotFound(NotFound):
    code = "CONTENT_NOT_FOUND"


class CorruptBlock(MarketplaceError):
    """A stored block whose bytes no longer hash to its CID; it is never served."""

    status = 500
    code = "CORRUPT_BLOCK"


class NotAFile(MarketplaceError):
    status = 400
    code = "NOT_A_FILE"


class NotADirectory(MarketplaceError):
    status = 400
    code = "NOT_A_DIRECTORY"


class CidMismatch(UpstreamUnavailable):
    """The production IPFS daemon answered a CID other than the one computed locally."""

    status = 502
    code = "CID_MISMATCH"


class PinNotFound(NotFound):
    code = "PIN_NOT_FOUND"
