"""One id scheme: `job_<n>` and `<n>` name the same job; anything else names none."""

import pytest

from marketplace.errors import JobNotFound
from marketplace.jobs.ids import MAX_JOB_ID, format_job_id, parse_job_id


def test_both_spellings_round_trip() -> None:
    assert format_job_id(5) == "job_5"
    assert parse_job_id("job_5") == parse_job_id("5") == parse_job_id(5) == 5
    assert parse_job_id(f"job_{MAX_JOB_ID}") == MAX_JOB_ID


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "job_",
        "job_0",
        "0",
        "-1",
        "job_-1",
        "job_05",
        "abc",
        "job_abc123",
        "5.0",
        "job_5x",
        f"job_{MAX_JOB_ID + 1}",
        "9" * 40,
        0,
        -3,
        MAX_JOB_ID + 1,
    ],
)
def test_anything_else_is_not_found(bad: object) -> None:
    with pytest.raises(JobNotFound):
        parse_job_id(bad)  # type: ignore[arg-type]
