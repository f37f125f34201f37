"""Status words of each API dialect, mapped to and from the canonical states.

The canonical lifecycle lives in `marketplace.jobs.states`; the dialects only rename.

Seed 001 (`/workspace/{id}/jobs`) knows five words: pending, running, success, failed,
cancelled. The canonical states map onto them as follows:

| canonical          | seed 001    | why                                                        |
|--------------------|-------------|------------------------------------------------------------|
| awaiting_funding   | pending     | queued; not started (waits for the escrow deposit)          |
| pending            | pending     |                                                            |
| claimed            | pending     | leased to a provider but not yet executing                  |
| running            | running     |                                                            |
| submitted          | running     | result recorded, challenge window open: not final yet       |
| disputed           | running     | outcome still open                                          |
| completed          | success     |                                                            |
| failed             | failed      |                                                            |
| expired            | failed      | deadline passed without a result: a failure to the user     |
| cancelled          | cancelled   |                                                            |

Filters on seed 001 accept its five words (expanded to every canonical state that shows
as that word) and the canonical-only words (`awaiting_funding`, `claimed`, `submitted`,
`completed`, `expired`, `disputed`), which select exactly that state. Where a word is
both (`pending`, `running`, `failed`, `cancelled`), the seed 001 meaning wins.

Seed 000 (TrainChain, `/jobs/...`) shows its own words in the job object's `status`
(`dcm_status` carries the canonical state next to it):

| canonical          | TrainChain   | why                                                       |
|--------------------|--------------|-----------------------------------------------------------|
| awaiting_funding   | unconfirmed  | TrainChain's job before its `createJob` payment lands      |
| pending            | pending      | open to contributors                                      |
| claimed            | in_progress  | a contributor applied (holds the lease)                   |
| running            | in_progress  |                                                           |
| submitted          | in_progress  | model uploaded (`model_cid` set, downloadable); the       |
|                    |              | escrow has not paid yet (challenge window)                |
| disputed           | in_progress  | model uploaded, payment held by a dispute                 |
| completed          | completed    | paid                                                      |
| failed, expired    | failed       | no trained model will come (TrainChain has no word)       |
| cancelled          | cancelled    | deleted while unfunded, or refunded (no word either)      |
"""

from __future__ import annotations

from collections.abc import Iterable

from marketplace.jobs.states import JobStatus

S = JobStatus

SEED001_WORD: dict[JobStatus, str] = {
    S.AWAITING_FUNDING: "pending",
    S.PENDING: "pending",
    S.CLAIMED: "pending",
    S.RUNNING: "running",
    S.SUBMITTED: "running",
    S.DISPUTED: "running",
    S.COMPLETED: "success",
    S.FAILED: "failed",
    S.EXPIRED: "failed",
    S.CANCELLED: "cancelled",
}

SEED001_WORDS = ("pending", "running", "success", "failed", "cancelled")

# What a seed 001 client may ask PATCH to set: its own words, plus `completed`, the word
# the seed's own examples print for a finished job. Provider-driven states (claimed,
# submitted, disputed, expired, awaiting_funding) are reached only through their flows.
SEED001_PATCH_TARGET: dict[str, JobStatus] = {
    "pending": S.PENDING,
    "running": S.RUNNING,
    "success": S.COMPLETED,
    "completed": S.COMPLETED,
    "failed": S.FAILED,
    "cancelled": S.CANCELLED,
}


def seed001_word(status: JobStatus | str) -> str:
    """The seed 001 word for a canonical state."""
    return SEED001_WORD[JobStatus(status)]


def seed001_filter(words: Iterable[str]) -> set[str]:
    """Canonical states selected by seed 001 filter words (seed words or canonical ones)."""
    out: set[str] = set()
    for word in words:
        if word in SEED001_WORDS:
            out.update(s.value for s, w in SEED001_WORD.items() if w == word)
        else:
            out.add(JobStatus(word).value)
    return out


TRAINCHAIN_WORD: dict[JobStatus, str] = {
    S.AWAITING_FUNDING: "unconfirmed",
    S.PENDING: "pending",
    S.CLAIMED: "in_progress",
    S.RUNNING: "in_progress",
    S.SUBMITTED: "in_progress",
    S.DISPUTED: "in_progress",
    S.COMPLETED: "completed",
    S.FAILED: "failed",
    S.EXPIRED: "failed",
    S.CANCELLED: "cancelled",
}


def trainchain_word(status: JobStatus | str) -> str:
    """The seed 000 (TrainChain) word for a canonical state."""
    return TRAINCHAIN_WORD[JobStatus(status)]
