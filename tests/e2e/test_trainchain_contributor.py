"""TrainChain's contributor routes on a served node and a real chain (the embedded EVM and
a Hardhat node): apply through the daemon's lease and on-chain assignment, the two-phase
apply, the model upload by the lease holder only, the wallet's own on-chain submit, and
the requester's download and the contributor's payout."""

from __future__ import annotations

import io
import time
import zipfile
from typing import Any

import httpx
import pytest
from eth_account import Account

from marketplace.escrow.client import Status
from marketplace.sdk.client import NodeClient
from tests.e2e.conftest import (
    REWARD_WEI,
    escrow_of,
    key_of,
    new_provider,
    send_call,
    upload_funded_job,
    wait_status,
)
from tests.fixtures import web

MODEL_FILES = {
    "weights/best.pt": b"trained weights",
    "weights/best.onnx": b"exported model",
    "metrics.json": b'{"metrics/accuracy_top1": 0.97}',
    "train.log": b"epoch 1/2\nepoch 2/2\n",
}


def contributor(node: Any, name: str) -> tuple[Any, dict[str, str]]:
    """A funded wallet, signed in (SIWE) and registered as a provider."""
    account = new_provider(node)
    client = NodeClient(node.url)
    client.sign_in(account)
    headers = {"Authorization": f"Bearer {client.token}"}
    resp = web.post(
        node.url + "/v1/providers",
        json={"name": name, "job_types": ["image_processing"]},
        headers=headers,
    )
    assert resp.status_code == 201, resp.text
    return account, headers


def post(node: Any, path: str, headers: dict[str, str], **body: Any) -> httpx.Response:
    return web.post(node.url + path, json=body, headers=headers, timeout=30)


def get(node: Any, path: str, **params: Any) -> httpx.Response:
    return web.get(node.url + path, params=params, timeout=30)


def upload_model(node: Any, headers: dict[str, str], job_id: int) -> httpx.Response:
    parts = [("files", (n, data, "application/octet-stream")) for n, data in MODEL_FILES.items()]
    return web.post(
        node.url + "/jobs/model/upload",
        data={"jobId": str(job_id)},
        files=parts,
        headers=headers,
        timeout=60,
    )


def wait_for(what: str, check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.2)
    return got


def code(resp: httpx.Response) -> str:
    return resp.json()["code"]


@pytest.mark.parametrize("node", ["embedded", "hardhat"], indirect=True)
def test_contributor_applies_uploads_the_model_and_is_paid(node, requester, dataset, tmp_path):
    job_id = upload_funded_job(node, requester, dataset, epochs=1)
    account, headers = contributor(node, "gpu-box")
    other, other_headers = contributor(node, "other-box")
    me = account.address

    # bad input first: nothing is leased by any of it
    assert (
        code(
            post(node, "/jobs/contributor/apply", headers, jobId=job_id, contributorAddress="0x123")
        )
        == "INVALID_FIELD"
    )
    stranger = Account.create().address
    mismatch = post(
        node, "/jobs/contributor/apply", headers, jobId=job_id, contributorAddress=stranger
    )
    assert mismatch.status_code == 403 and code(mismatch) == "ADDRESS_MISMATCH"
    unknown = post(node, "/jobs/contributor/apply", headers, jobId=9999, contributorAddress=me)
    assert unknown.status_code == 404 and code(unknown) == "JOB_NOT_FOUND"
    unsigned = post(node, "/jobs/contributor/apply", {}, jobId=job_id, contributorAddress=me)
    assert unsigned.status_code == 401
    assert get(node, f"/jobs/image_processing/get-job/{job_id}").json()["status"] == "pending"

    # two-phase apply: initiate = claim, revert = release (back to pending)
    initiated = post(
        node, "/jobs/contributor/apply/initiate", headers, jobId=job_id, contributorAddress=me
    )
    assert initiated.status_code == 200, initiated.text
    body = initiated.json()
    assert body["message"] == "Job acceptance initiated"
    assert body["job"]["status"] == "in_progress" and body["job"]["contributor_address"] == me
    assert body["lease"]["attempt"] == 1 and body["voucher"]["provider"] == me
    assert get(node, "/jobs/contributor/get-job", contributorAddress=me).json()["id"] == job_id
    taken = post(
        node,
        "/jobs/contributor/apply",
        other_headers,
        jobId=job_id,
        contributorAddress=other.address,
    )
    assert taken.status_code == 409 and code(taken) == "JOB_NOT_CLAIMABLE"
    reverted = post(node, "/jobs/contributor/apply/revert", headers, jobId=job_id)
    assert reverted.status_code == 200, reverted.text
    assert reverted.json()["job"]["dcm_status"] == "pending"
    none = get(node, "/jobs/contributor/get-job", contributorAddress=me)
    assert none.status_code == 201 and "message" in none.json()

    # single-phase apply, then confirm = start; the node binds the wallet on chain
    applied = post(node, "/jobs/contributor/apply", headers, jobId=job_id, contributorAddress=me)
    assert applied.status_code == 200, applied.text
    assert applied.json()["message"] == "Job application successful"
    assert applied.json()["lease"]["attempt"] == 2
    stale = post(node, "/jobs/contributor/apply/confirm", headers, jobId=job_id, attempt=1)
    assert stale.status_code == 409 and code(stale) == "STALE_ATTEMPT"
    confirmed = post(node, "/jobs/contributor/apply/confirm", headers, jobId=job_id)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["job"]["dcm_status"] == "running"
    escrow, key = escrow_of(node), key_of(node, job_id)
    wait_for(
        "the node's on-chain assignment",
        lambda: (
            (r := escrow.get_job(key)).status == Status.BOUND
            and r.provider == me
            and r.attempt == 2
        ),
    )

    # only the lease holder uploads; a refused upload leaves no model
    refused = upload_model(node, other_headers, job_id)
    assert refused.status_code == 409 and code(refused) == "NOT_LEASE_HOLDER"
    assert get(node, f"/jobs/get-model/{job_id}").status_code == 404
    uploaded = upload_model(node, headers, job_id)
    assert uploaded.status_code == 200, uploaded.text
    result = uploaded.json()
    model_cid = result["job"]["model_cid"]
    assert model_cid and result["job"]["dcm_status"] == "submitted"
    send_call(escrow, account, result["submit_call"])  # the wallet puts the digest on chain
    assert escrow.get_job(key).status == Status.SUBMITTED

    # the requester downloads the model, accepts it on chain; the contributor is paid
    model = get(node, f"/jobs/get-model/{job_id}")
    assert model.status_code == 200
    with zipfile.ZipFile(io.BytesIO(model.content)) as zf:
        assert {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")} == MODEL_FILES
    before = escrow.w3.eth.get_balance(me)
    escrow.accept(requester, key)
    assert escrow.w3.eth.get_balance(me) - before == REWARD_WEI
    wait_status(node, job_id, {"completed"}, timeout=30)
    history = wait_for(
        "the payout in the history",
        lambda: (
            (h := get(node, "/jobs/contributor/all-jobs", contributorAddress=me).json())
            and h[0]["payouts"]
            and h
        ),
    )
    assert [j["id"] for j in history] == [job_id]
    assert history[0]["status"] == "completed" and history[0]["model_cid"] == model_cid
    assert history[0]["payouts"][0]["provider_amount_wei"] == str(REWARD_WEI)
    mine = get(node, "/jobs/my-requests", requesterAddress=requester.address).json()
    assert mine[0]["id"] == job_id and mine[0]["status"] == "completed"
    assert get(node, "/jobs/contributor/all-jobs", contributorAddress="nope").status_code == 400
