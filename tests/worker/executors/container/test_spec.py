"""A container spec the provider must refuse before anything reaches the engine."""

from __future__ import annotations

import pytest

from marketplace.errors import ValidationFailed
from worker.executors.container import parse_container_job


@pytest.mark.parametrize(
    "bad",
    [
        {"env": {"A B": "1"}},
        {"volumes": [{"name": "v", "mount_path": "/outputs", "size_bytes": 1}]},
        {"volumes": [{"name": "v", "mount_path": "relative", "size_bytes": 1}]},
        {"inputs": [{"cid": "Qm" + "a" * 44, "path": "/../etc"}]},
        {"inputs": [{"cid": "Qm" + "a" * 44, "path": "/outputs/in"}]},
        {"inputs": [{"cid": "Qm" + c * 44, "path": "/d"} for c in "ab"]},
        {"memory_bytes": -1},
        {"image": "ipfs://not-a-cid"},
    ],
)
def test_an_unsafe_or_invalid_spec_is_the_jobs_fault(bad: dict) -> None:
    with pytest.raises(ValidationFailed):
        parse_container_job({"image": "localhost/busybox:latest", **bad})


def test_inputs_go_to_inputs_alone_or_by_cid_when_several() -> None:
    one = parse_container_job({"image": "x", "inputs": [{"cid": "Qm" + "a" * 44}]})
    assert one.input_mounts() == [("Qm" + "a" * 44, "/inputs")]
    two = parse_container_job(
        {"image": "x", "inputs": [{"cid": "Qm" + "a" * 44}, {"cid": "Qm" + "b" * 44}]}
    )
    assert [p for _, p in two.input_mounts()] == ["/inputs/Qm" + "a" * 44, "/inputs/Qm" + "b" * 44]
