"""Disputes as users run them, against a real `dcm serve` on its embedded chain: the
requester disputes with `dcm job dispute`, the arbiter rules with `dcm chain resolve`
using the node's separate arbiter key; the provider side is the daemon's own chain code."""

from __future__ import annotations

import json
import time

from marketplace.sdk.client import NodeClient
from tests.e2e.conftest import REWARD_WEI, escrow_of, new_provider, wait_status
from tests.fixtures import web
from tests.fixtures.keystores import keystore_json
from tests.fixtures.served import run_dcm
from worker.chain import ProviderChain

RESULT_CID = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"


def _escrow_view(node, job_id: int) -> dict:
    return web.get(f"{node.url}/v1/jobs/job_{job_id}/escrow").json()["data"]


def _wait(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_the_requester_disputes_and_the_arbiter_rules_with_the_cli(
    node, requester, dataset, tmp_path
):
    keyfile = tmp_path / "requester.json"
    keyfile.write_text(keystore_json(requester.key, "pw"))
    env = {**node.env, "DCM_WALLET_PASSWORD": "pw"}
    job = NodeClient(node.url).upload_dataset_job(
        dataset,
        model="yolov8n",
        epochs=1,
        imgsz=64,
        classes=["cat", "dog"],
        reward="0.01",
        requester_address=requester.address,
    )
    job_id = job.number
    run_dcm(["job", "fund", str(job_id), "--node", node.url, "--keyfile", str(keyfile)], env)
    wait_status(node, job_id, {"pending"}, timeout=30)

    # a provider leases the job and submits a result on chain with the daemon's own code
    provider = new_provider(node)
    api = NodeClient(node.url)
    api.sign_in(provider)
    api.request("POST", "/v1/providers", json={"name": "p", "job_types": ["image_processing"]})
    claim = api.request("POST", "/v1/providers/claim", json={}).json()["data"]
    info = web.get(node.url + "/chain/info").json()
    chain = ProviderChain(info["rpc_url"], info["escrow_address"], provider)
    chain.submit(claim["voucher"], RESULT_CID)
    body = {"attempt": claim["lease"]["attempt"], "result_cid": RESULT_CID}
    api.request("POST", f"/v1/jobs/job_{job_id}/result", json=body)
    _wait(
        lambda: (_escrow_view(node, job_id).get("result") or {}).get("verdict") == "accepted",
        "the node did not judge the result",
    )

    out = run_dcm(
        ["job", "dispute", str(job_id), "--node", node.url, "--keyfile", str(keyfile)], env
    )
    assert out.startswith("dispute: tx 0x")
    wait_status(node, job_id, {"disputed"}, timeout=30)
    assert _escrow_view(node, job_id)["disputed_by"] == requester.address

    before = escrow_of(node).w3.eth.get_balance(provider.address)
    arbiter_key = node.data_dir / "chain" / "arbiter.key"
    out = run_dcm(
        [
            "chain",
            "resolve",
            str(job_id),
            "--share",
            "10000",
            "--node",
            node.url,
            "--key-file",
            str(arbiter_key),
        ],
        env,
    )
    ruling = json.loads(out)
    assert ruling["provider_share_bps"] == 10_000 and ruling["tx_hash"].startswith("0x")
    assert ruling["arbiter"] == info["arbiter"] != info["assigner"]
    wait_status(node, job_id, {"completed"}, timeout=30)
    assert escrow_of(node).w3.eth.get_balance(provider.address) - before == REWARD_WEI
    settled = web.get(f"{node.url}/v1/jobs/job_{job_id}/settlement").json()["data"]
    assert settled["outcome"] == "resolved" and settled["recipient"] == provider.address
