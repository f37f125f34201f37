"""The message a requester's wallet signs to delete its unfunded seed 000 job.

TrainChain's `DELETE /jobs/delete/:jobId` takes no credentials; here the requester proves
the address with an EIP-191 `personal_sign` of this text. It names the job's number, its
requester, its metadata CID and its creation time, so a signature deletes that one job
and no later job that might reuse the number. The node serves the text on
`GET /jobs/retry-info/:jobId` (`delete_message`); a client may also build it here.
"""

from __future__ import annotations


def delete_job_message(
    job_id: int, requester: str, metadata_cid: str | None, created_at: str
) -> str:
    """The exact text to sign (`created_at`: the seed 000 job object's `created_at`)."""
    return (
        f"Delete unfunded job {job_id} from the dcm node.\n"
        f"Requester: {requester}\n"
        f"Metadata: {metadata_cid or '-'}\n"
        f"Created: {created_at}"
    )
