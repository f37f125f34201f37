"""Job keys, CID digests, artifact freshness and revert decoding (no chain needed)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess

import pytest
from eth_abi import encode as abi_encode
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from web3.exceptions import ContractCustomError

from marketplace.errors import ChainError, JobNotFound, ValidationFailed
from marketplace.escrow import (
    cid_digest,
    cidv0_of_digest,
    decode_revert,
    job_key,
    load_artifact,
    parse_job_key,
)
from marketplace.escrow.errors import chain_error
from marketplace.escrow.keys import multihash_of
from tests.fixtures.engines import require_engine

from .harness import ROOT

REQUESTER = "0xe003212E9A5b41a923566b3E093fe1c3D1c68A5A"


def test_job_key_is_the_documented_formula():
    """requester (20 bytes) | generation (4) | job number (8)."""
    expected = bytes.fromhex(REQUESTER[2:]) + (0).to_bytes(4, "big") + (5).to_bytes(8, "big")
    assert job_key("job_5", REQUESTER) == job_key(5, REQUESTER.lower()) == expected
    assert job_key(6, REQUESTER) != expected
    assert job_key(5, REQUESTER, 1) != expected
    assert job_key(0x1234, REQUESTER, 2)[20:] == b"\x00\x00\x00\x02" + b"\x00" * 6 + b"\x12\x34"
    parts = parse_job_key(job_key(7, REQUESTER, 3))
    assert (parts.requester, parts.generation, parts.number) == (REQUESTER, 3, 7)
    assert parse_job_key("0x" + expected.hex()).number == 5
    assert parse_job_key(b"\xff" * 32).number == 0  # no job of this node has that number
    with pytest.raises(JobNotFound):
        job_key("job_0", REQUESTER)
    with pytest.raises(JobNotFound):
        job_key("nope", REQUESTER)
    with pytest.raises(ValidationFailed):
        job_key(5, "not-an-address")
    with pytest.raises(ValidationFailed):
        job_key(5, REQUESTER, 2**32)


def test_cidv0_of_a_digest_is_the_inverse_of_cid_digest():
    cid = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
    assert cidv0_of_digest(cid_digest(cid)) == cid
    assert cidv0_of_digest("0x" + cid_digest(cid).hex()) == cid


def test_cid_digest_of_v0_and_v1_agree():
    vectors = json.loads((ROOT / "tests" / "fixtures" / "cid_vectors.json").read_text())
    for item in vectors["files"]:
        v0 = item["cidv0"]
        mh = multihash_of(v0)
        assert mh[:2] == b"\x12\x20" and len(mh) == 34
        v1 = "b" + base64.b32encode(b"\x01\x70" + mh).decode().lower().rstrip("=")
        assert cid_digest(v0) == cid_digest(v1) == mh[2:]


def test_cid_digest_of_a_raw_leaf_is_the_content_sha256():
    data = b"hello escrow"
    digest = hashlib.sha256(data).digest()
    cid = "b" + base64.b32encode(b"\x01\x55\x12\x20" + digest).decode().lower().rstrip("=")
    assert cid_digest(cid) == digest


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "Qm0OIl" + "1" * 40,
        "xabc",
        "bafy!!",
        "b" + base64.b32encode(b"\x01\x55\x00\x03abc").decode().lower().rstrip("="),
    ],
)
def test_bad_cids_are_validation_errors(bad):
    with pytest.raises(ValidationFailed):
        cid_digest(bad)


def _custom_error(signature: str, types: list[str], args: list) -> bytes:
    return keccak(signature.encode())[:4] + abi_encode(types, args)


def test_revert_decoding_from_each_backend_shape():
    data = _custom_error("WrongStatus(uint8)", ["uint8"], [3])
    assert decode_revert(data) == ("WrongStatus", (3,))
    # eth-tester (through web3's provider) stringifies the revert bytes
    err = chain_error(TransactionFailed(f"execution reverted: {data!r}"), action="accept")
    assert isinstance(err, ChainError) and err.error_name == "WrongStatus"
    # web3 over JSON-RPC (Hardhat) carries hex data
    err = chain_error(ContractCustomError("0x" + data.hex(), data="0x" + data.hex()), action="x")
    assert err.error_name == "WrongStatus" and err.details["args"] == (3,)
    no_args = _custom_error("NotRequester()", [], [])
    assert chain_error(ValueError({"data": "0x" + no_args.hex()}), action="x").error_name == (
        "NotRequester"
    )
    unknown = chain_error(RuntimeError("boom"), action="fund")
    assert unknown.error_name is None and unknown.status == 409


def test_artifact_is_complete_and_the_package_copy_is_identical():
    committed = (ROOT / "contracts" / "artifacts" / "JobEscrow.json").read_text()
    packaged = (ROOT / "marketplace" / "escrow" / "artifacts" / "JobEscrow.json").read_text()
    assert committed == packaged
    art = load_artifact()
    assert art["compiler"]["version"].startswith("0.8.28+commit.")
    assert art["compiler"]["settings"]["evmVersion"] == "cancun"
    assert art["bytecode"].startswith("0x6") and len(art["deployedBytecode"]) > 1000
    meta = json.loads(art["metadata"])
    assert meta["settings"]["evmVersion"] == "cancun"
    src = art["standardJsonInput"]["sources"]["contracts/JobEscrow.sol"]["content"]
    assert src == (ROOT / "contracts" / "JobEscrow.sol").read_text()
    errors = {i["name"] for i in art["abi"] if i["type"] == "error"}
    assert {"WrongStatus", "NotRequester", "NotProvider", "BadSignature", "StaleAttempt"} <= errors
    assert {"ForbiddenProvider", "WrongFunding", "Reentrancy"} <= errors


def test_committed_artifact_matches_a_fresh_compile():
    """CI fails when someone edits the contract without `npm run compile`."""
    node = shutil.which("node")
    require_engine(
        node is not None and (ROOT / "node_modules" / "solc").exists(),
        "node and the npm solc package (npm ci) are needed to recompile",
    )
    proc = subprocess.run(
        [node, "contracts/compile.js", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_committed_test_wallet_matches_a_fresh_compile():
    """The helper contract the escrow tests deploy is built from its committed source."""
    node = shutil.which("node")
    require_engine(
        node is not None and (ROOT / "node_modules" / "solc").exists(),
        "node and the npm solc package (npm ci) are needed to recompile",
    )
    script = ROOT / "tests" / "marketplace" / "escrow" / "contracts" / "compile.js"
    proc = subprocess.run(
        [node, str(script), "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
