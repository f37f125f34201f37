"""Python binding of the JobEscrow contract (contracts/JobEscrow.sol).

`JobEscrow` deploys, reads and transacts; `job_key`, `parse_job_key`, `cid_digest`
compute the contract's identifiers; `funding_call` is what a requester's wallet signs to fund a job.
"""

from .artifact import load_artifact
from .client import (
    GAS_LIMITS,
    JobEscrow,
    JobRecord,
    JobRef,
    Outcome,
    Status,
    TxResult,
    Voucher,
)
from .errors import decode_revert
from .keys import KeyParts, cid_digest, cidv0_of_digest, job_key, parse_job_key

__all__ = [
    "GAS_LIMITS",
    "JobEscrow",
    "JobRecord",
    "JobRef",
    "KeyParts",
    "Outcome",
    "Status",
    "TxResult",
    "Voucher",
    "cid_digest",
    "cidv0_of_digest",
    "decode_revert",
    "job_key",
    "load_artifact",
    "parse_job_key",
]
