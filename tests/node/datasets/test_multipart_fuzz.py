"""Whatever bytes arrive as a multipart body, the upload answers a 4xx with a stable code
(never a 500) and leaves nothing behind."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.config import NodeSettings
from tests.fixtures.datasets import assert_nothing_stored

BOUNDARY = "fuzzB0undary"
CODES = {
    "MALFORMED_MULTIPART",
    "INVALID_FIELD",
    "UNSAFE_FILENAME",
    "INVALID_DATASET",
    "INVALID_ARCHIVE",
    "UNSUPPORTED_MODEL",
    "PAYLOAD_TOO_LARGE",
}


@pytest.fixture(name="settings")
def fuzzing_settings(settings: NodeSettings) -> NodeSettings:
    # One client sends every example: the per-client upload limit is not under test here.
    settings.rate_limits.upload_per_client = "1000/minute"
    return settings


part_header = st.sampled_from(
    [
        b'Content-Disposition: form-data; name="files"; filename="images/a.png"',
        b'Content-Disposition: form-data; name="files"; filename="../x"',
        b'Content-Disposition: form-data; name="files"; filename="d.zip"',
        b'Content-Disposition: form-data; name="model"',
        b"Content-Disposition: attachment",
        b"Content-Type: text/plain",
        b"X" * 300,
        b"",
    ]
)
chunk = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"\r\n", b"--" + BOUNDARY.encode(), b"--" + BOUNDARY.encode() + b"--"]),
    part_header,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pieces=st.lists(chunk, max_size=12))
def test_any_body_is_a_clear_4xx(client, app, pieces):
    body = b"".join(pieces)
    resp = client.post(
        "/jobs/image_processing/upload",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.json()["code"] in CODES
    assert_nothing_stored(app)
