"""The SDK's result models read what the node sends, whatever its dialect, into one
snake_case shape, and never break on fields a newer node adds."""

from __future__ import annotations

from decimal import Decimal

import pytest

from marketplace.sdk.models import Escrow, Event, Job, Link, LogLine, Receipt, Settlement

V1_JOB = {
    "id": "job_7",
    "type": "image_processing",
    "status": "submitted",
    "payload": {"model": "yolov8n", "someKey": 1},
    "resultCid": "QmResult",
    "progressMessage": "Epoch 2/2",
    "reward": "0.01",
    "createdAt": "2026-11-28T18:00:00.123Z",
    "events": [
        {"id": 1, "seq": 1, "type": "state", "fromStatus": None, "toStatus": "pending"},
        {"id": 2, "seq": 2, "type": "state", "fromStatus": "pending", "toStatus": "submitted"},
    ],
}


def test_fields_a_newer_node_adds_are_kept_in_snake_case():
    job = Job.model_validate({**V1_JOB, "queuePosition": 3, "events": [{"type": "x", "newBit": 1}]})
    assert job.queue_position == 3 and job.events[0].new_bit == 1
    assert job.payload == {"model": "yolov8n", "someKey": 1}  # user data keeps its keys


def test_a_v1_job_reads_into_snake_case_attributes_with_typed_values():
    job = Job.model_validate(V1_JOB)
    assert (job.number, job.result_cid, job.progress_message) == (7, "QmResult", "Epoch 2/2")
    assert job.reward == Decimal("0.01") and job.created_at.microsecond == 123000
    assert [e.to_status for e in job.events] == ["pending", "submitted"]
    assert repr(job) == "<Job job_7 image_processing submitted reward=0.01 ETH result=QmResult>"
    assert repr(job.events[1]) == "<Event 2 state pending->submitted>"


def test_seed000_trailing_zeros_and_whole_rewards_print_plainly():
    for wire, shown in (("0.010000", "0.01"), ("500.000000", "500"), ("0", "0")):
        job = Job.model_validate({"id": 1, "job_type": "t", "status": "open", "reward": wire})
        assert str(job.reward) == shown and job.id == "job_1"


def test_dict_access_is_deprecated_but_answers_what_the_node_sent():
    job = Job.model_validate(V1_JOB)
    with pytest.warns(
        DeprecationWarning, match=r"Job\['resultCid'\] is deprecated: use \.result_cid"
    ):
        assert job["resultCid"] == "QmResult"
    with pytest.warns(DeprecationWarning):
        assert job["events"][0]["toStatus"] == "pending"
    with pytest.warns(DeprecationWarning), pytest.raises(KeyError):
        job["nothing"]
    assert "resultCid" in job and "result_cid" in job and "nothing" not in job


def test_a_json_rpc_receipt_has_int_quantities_and_a_sender():
    receipt = Receipt.model_validate(
        {
            "transactionHash": "0xab",
            "blockNumber": "0x10",
            "status": "0x1",
            "from": "0xF0",
            "gasUsed": "0x5208",
            "logs": [],
            "type": "0x2",
        }
    )
    assert (receipt.block_number, receipt.gas_used, receipt.sender) == (16, 21000, "0xF0")
    assert receipt.succeeded and repr(receipt) == "<Receipt 0xab block 16 ok>"


def test_settlement_escrow_link_and_log_line_reprs_say_what_matters():
    paid = Settlement.model_validate(
        {
            "job_id": "job_7",
            "outcome": "accepted",
            "recipient": "0xP",
            "amount_wei": "100",
            "fee_wei": "1",
            "tx_hash": "0xt",
            "deferred": [],
        }
    )
    assert paid.amount_wei == 100
    assert str(paid) == "<Settlement job_7 accepted 100 wei to 0xP fee=1 wei tx=0xt>"
    escrow = Escrow.model_validate(
        {
            "job_key": "0x" + "ab" * 32,
            "status": "SUBMITTED",
            "amount_wei": "5",
            "result": {"digest": "0xd", "cid": "Qm", "verdict": "accepted"},
        }
    )
    assert escrow.result is not None and escrow.result.verdict == "accepted"
    assert repr(escrow) == "<Escrow 0xabababab… SUBMITTED 5 wei>"
    link = Link.model_validate({"Name": "a.txt", "Hash": "Qm1", "Size": 3, "Type": 2})
    assert (link.name, link.hash, link.type) == ("a.txt", "Qm1", 2)
    line = LogLine.model_validate({"seq": 4, "message": "hello", "stream": "stdout"})
    assert line.type == "log" and repr(line) == "<LogLine 4 log 'hello'>"
    assert isinstance(line, Event)
