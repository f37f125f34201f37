"""TrainChain's requester routes on a real node and its embedded chain: the funding gate's
confirm / retry-info / delete, my-requests, and the trained model's zip (get-model)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi.testclient import TestClient
from web3 import Web3

from marketplace.jobs.deletion import delete_job_message
from tests.fixtures.datasets import files_of, form
from tests.node.chain.conftest import RpcViaTestClient, hand_driven_node
from tests.node.chain.scenario import send_call
from tests.node.chain.test_settle import provider_headers, upload, wallet


@pytest.fixture
def node(settings) -> Any:
    with hand_driven_node(settings) as client:  # the test drives every tick itself
        yield client


def tick(node: TestClient) -> None:
    node.app.state.runtime.chain_tick.run_once(drain=True)


def code(resp: Any) -> str:
    return resp.json()["code"]


def funded(node: TestClient, tmp_path: Path, requester: Any, seed: int = 1) -> dict[str, Any]:
    job = upload(node, tmp_path, requester.address, seed=seed)
    call = node.get(f"/jobs/retry-info/{job['id']}").json()["funding"]
    assert send_call(Web3(RpcViaTestClient(node)), requester, call)["status"] == 1
    tick(node)
    return job


def sign_delete(acct: Any, job: dict[str, Any]) -> str:
    text = delete_job_message(
        job["id"], job["requester_address"], job["metadata_cid"], job["created_at"]
    )
    return "0x" + acct.sign_message(encode_defunct(text=text)).signature.hex().removeprefix("0x")


def test_confirm_says_what_is_missing_until_the_deposit_lands(node, tmp_path):
    requester = wallet(node)
    job = upload(node, tmp_path, requester.address)
    refused = node.post(f"/jobs/confirm/{job['id']}")
    assert refused.status_code == 409 and code(refused) == "NOT_FUNDED"
    assert refused.json()["detail"]["missing"] == "deposit"
    assert refused.json()["detail"]["funding"] == job["funding"]

    call = node.get(f"/jobs/retry-info/{job['id']}").json()["funding"]
    send_call(Web3(RpcViaTestClient(node)), requester, call)
    tick(node)
    confirmed = node.post(f"/jobs/confirm/{job['id']}")
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert body["message"] == "Job confirmed successfully"
    assert body["job"]["status"] == "pending" and body["job"]["dcm_status"] == "pending"
    assert node.post("/jobs/confirm/999").status_code == 404


def test_retry_info_is_the_funding_call_and_the_delete_text_until_funded(node, tmp_path):
    requester = wallet(node)
    job = upload(node, tmp_path, requester.address)
    info = node.get(f"/jobs/retry-info/{job['id']}")
    assert info.status_code == 200, info.text
    body = info.json()
    assert body["funding"] == job["funding"] and body["job"]["status"] == "unconfirmed"
    assert body["delete_message"] == delete_job_message(
        job["id"], job["requester_address"], job["metadata_cid"], job["created_at"]
    )
    funded_job = funded(node, tmp_path, requester, seed=2)
    again = node.get(f"/jobs/retry-info/{funded_job['id']}")
    assert again.status_code == 409 and code(again) == "NOT_AWAITING_FUNDING"
    assert node.get("/jobs/retry-info/abc").status_code == 404


def test_delete_with_the_requesters_signature_cancels_the_unfunded_job(node, tmp_path):
    requester = wallet(node)
    job = upload(node, tmp_path, requester.address)
    body = {"requesterAddress": requester.address, "signature": sign_delete(requester, job)}
    resp = node.request("DELETE", f"/jobs/delete/{job['id']}", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"message": "Job deleted successfully"}
    detail = node.get(f"/jobs/image_processing/get-job/{job['id']}").json()
    assert detail["status"] == "cancelled" and detail["funding"] is None
    again = node.request("DELETE", f"/jobs/delete/{job['id']}", json=body)
    assert again.status_code == 409 and code(again) == "INVALID_TRANSITION"
    assert node.post(f"/jobs/confirm/{job['id']}").json()["detail"]["missing"] == "job"


def test_delete_refuses_strangers_bad_signatures_and_funded_jobs(node, tmp_path):
    requester, stranger = wallet(node), wallet(node)
    job = upload(node, tmp_path, requester.address)
    url = f"/jobs/delete/{job['id']}"

    def delete(address: str, signature: str, path: str = url) -> Any:
        body = {"requesterAddress": address, "signature": signature}
        return node.request("DELETE", path, json=body)

    theirs = delete(stranger.address, sign_delete(stranger, job))
    assert theirs.status_code == 403 and code(theirs) == "NOT_REQUESTER"
    forged = delete(requester.address, sign_delete(stranger, job))
    assert forged.status_code == 401 and code(forged) == "INVALID_SIGNATURE"
    other_job = upload(node, tmp_path, requester.address, seed=2)
    replayed = delete(requester.address, sign_delete(requester, other_job))
    assert replayed.status_code == 401 and code(replayed) == "INVALID_SIGNATURE"
    malformed = delete("0x1234", sign_delete(requester, job))
    assert malformed.status_code == 422
    bad_checksum = delete(requester.address.swapcase(), sign_delete(requester, job))
    assert bad_checksum.status_code in (403, 422)  # all-lower/upper is accepted, mixed is not
    unknown = delete(requester.address, sign_delete(requester, job), "/jobs/delete/999")
    assert unknown.status_code == 404 and code(unknown) == "JOB_NOT_FOUND"
    assert node.get(f"/jobs/image_processing/get-job/{job['id']}").json()["status"] == (
        "unconfirmed"
    )

    paid = funded(node, tmp_path, requester, seed=3)
    refused = delete(requester.address, sign_delete(requester, paid), f"/jobs/delete/{paid['id']}")
    assert refused.status_code == 409 and code(refused) == "JOB_FUNDED"
    assert node.get(f"/jobs/image_processing/get-job/{paid['id']}").json()["status"] == "pending"


def test_my_requests_lists_that_addresss_jobs_newest_first(node, tmp_path):
    requester, other = wallet(node), wallet(node)
    first = upload(node, tmp_path, requester.address, seed=1)
    upload(node, tmp_path, other.address, seed=2)
    second = funded(node, tmp_path, requester, seed=3)
    mine = node.get("/jobs/my-requests", params={"requesterAddress": requester.address.lower()})
    assert mine.status_code == 200, mine.text
    listed = mine.json()
    assert [j["id"] for j in listed] == [second["id"], first["id"]]
    assert [j["status"] for j in listed] == ["pending", "unconfirmed"]
    assert {j["requester_address"] for j in listed} == {requester.address}
    nobody = node.get("/jobs/my-requests", params={"requesterAddress": Account.create().address})
    assert nobody.status_code == 200 and nobody.json() == []
    bad = node.get("/jobs/my-requests", params={"requesterAddress": "0xnothex"})
    assert bad.status_code == 400 and code(bad) == "INVALID_QUERY"
    assert node.get("/jobs/my-requests").status_code == 422


def test_get_model_is_404_until_the_result_then_the_same_zip_every_time(node, tmp_path):
    requester, contributor = wallet(node), wallet(node)
    job = funded(node, tmp_path, requester)
    job_id = job["id"]
    none_yet = node.get(f"/jobs/get-model/{job_id}")
    assert none_yet.status_code == 404 and code(none_yet) == "MODEL_NOT_FOUND"
    assert code(node.get("/jobs/get-model/999")) == "JOB_NOT_FOUND"

    headers = provider_headers(node, contributor, "contrib")
    body = {"jobId": job_id, "contributorAddress": contributor.address}
    applied = node.post("/jobs/contributor/apply", json=body, headers=headers)
    assert applied.status_code == 200, applied.text
    files = {
        "weights/best.pt": b"weights",
        "best.onnx": b"onnx model",
        "metrics.json": b'{"metrics/mAP50(B)": 0.61}',
        "train.log": b"epoch 1\nepoch 2\n",
    }
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files.items()]
    up = node.post("/jobs/model/upload", data={"jobId": str(job_id)}, files=parts, headers=headers)
    assert up.status_code == 200, up.text
    shown = node.get(f"/jobs/image_processing/get-job/{job_id}").json()
    assert shown["model_cid"] == up.json()["job"]["model_cid"] is not None
    assert shown["contributor_address"] == contributor.address
    assert shown["status"] == "in_progress" and shown["dcm_status"] == "submitted"

    resp = node.get(f"/jobs/get-model/{job_id}")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/zip"
    assert resp.headers["content-disposition"] == f'attachment; filename="model_{job_id}.zip"'
    with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
        got = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    assert got == files
    assert node.get(f"/jobs/get-model/job_{job_id}").content == resp.content


def test_upload_answers_200_as_trainchain_documents(node, tmp_path):
    from marketplace.datasets.synthetic import write_detection_dataset

    root = write_detection_dataset(tmp_path / "ds", train=3, val=2)
    resp = node.post("/jobs/image_processing/upload", data=form(), files=files_of(root))
    assert resp.status_code == 200 and resp.json()["message"] == "Job uploaded successfully"


def test_dcm_wallet_sign_makes_the_delete_signature(node, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from dcm.cli import main
    from marketplace.wallet import load_keystore

    monkeypatch.setenv("DCM_WALLET_PASSWORD", "wallet-password")
    runner = CliRunner()
    keyfile = tmp_path / "requester.json"
    made = runner.invoke(main, ["wallet", "new", "--out", str(keyfile)])
    assert made.exit_code == 0, made.output
    requester = load_keystore(keyfile, "wallet-password")
    job = upload(node, tmp_path, requester.address)
    text = node.get(f"/jobs/retry-info/{job['id']}").json()["delete_message"]
    (tmp_path / "message.txt").write_text(text)
    signed = runner.invoke(main, ["wallet", "sign", str(keyfile), str(tmp_path / "message.txt")])
    assert signed.exit_code == 0, signed.output
    body = {"requesterAddress": requester.address, "signature": signed.output.strip()}
    resp = node.request("DELETE", f"/jobs/delete/{job['id']}", json=body)
    assert resp.status_code == 200, resp.text
