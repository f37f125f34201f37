"""Stable error codes of dataset uploads and downloads (all `MarketplaceError`s).

They live here rather than in `marketplace.errors` so that this domain owns its codes;
`marketplace.codes` imports this module, so `from_code` finds them.
"""

from __future__ import annotations

from marketplace.errors import MarketplaceError, NotFound, PayloadTooLarge, ValidationFailed


class MalformedMultipart(MarketplaceError):
    """The request body is not a well-formed multipart/form-data stream."""

    status = 400
    code = "MALFORMED_MULTIPART"


class UnsupportedMediaType(MarketplaceError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class UnsafeFilename(MarketplaceError):
    """An uploaded file's name is absolute, climbs out with `..`, or repeats another."""

    status = 400
    code = "UNSAFE_FILENAME"


class InvalidArchive(MarketplaceError):
    """The `.zip` cannot be read (corrupt, encrypted, unsupported compression)."""

    status = 400
    code = "INVALID_ARCHIVE"


class UnsafeArchive(MarketplaceError):
    """An archive entry is absolute, climbs out with `..`, is a link or special file,
    repeats another entry, or expands more than the configured ratio."""

    status = 400
    code = "UNSAFE_ARCHIVE"


class ArchiveTooLarge(PayloadTooLarge):
    """The archive would expand past the upload size or file-count limit."""

    code = "ARCHIVE_TOO_LARGE"


class InvalidAddress(ValidationFailed):
    code = "INVALID_ADDRESS"


class InvalidReward(ValidationFailed):
    code = "INVALID_REWARD"


class InvalidDataset(ValidationFailed):
    """The files do not form a YOLO dataset matching the job (layout, labels, images)."""

    code = "INVALID_DATASET"


class DatasetNotFound(NotFound):
    code = "DATASET_NOT_FOUND"

    @classmethod
    def default_message(cls) -> str:
        return "Dataset not found"


class DatasetMismatch(MarketplaceError):
    """The dataset a provider fetched does not re-add to the job's `folder_cid`: the bytes
    are not what the requester pinned (the provider refuses to train on them)."""

    status = 422
    code = "DATASET_CID_MISMATCH"
