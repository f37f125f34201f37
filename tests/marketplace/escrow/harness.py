"""A test chain with the escrow deployed and named, funded actors, on either backend:
the in-process EVM (eth-tester) or a Hardhat node over HTTP."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, Web3

from marketplace.escrow import JobEscrow, Voucher, job_key
from tests.fixtures.ports import free_port

ROOT = Path(__file__).resolve().parents[3]
HARDHAT = ROOT / "node_modules" / ".bin" / "hardhat"
ACTORS = (
    "deployer",
    "arbiter",
    "node",
    "requester",
    "requester2",
    "provider",
    "provider2",
    "fee",
    "keeper",
    "mallory",
)
START_BALANCE = 10**22
FEE_BPS = 250
ARBITRATION_WINDOW = 3600


@dataclass
class Harness:
    w3: Web3
    kind: str
    actors: dict[str, LocalAccount]
    escrow: JobEscrow = field(init=False)
    tester: object | None = None

    def __getattr__(self, name: str) -> LocalAccount:
        try:
            return self.__dict__["actors"][name]
        except KeyError:
            raise AttributeError(name) from None

    def deploy(self, fee_bps: int = FEE_BPS) -> JobEscrow:
        self.escrow = JobEscrow.deploy(
            self.w3,
            self.actors["deployer"],
            arbiter=self.actors["arbiter"].address,
            assigner=self.actors["node"].address,
            fee_bps=fee_bps,
            fee_recipient=self.actors["fee"].address,
            arbitration_window=ARBITRATION_WINDOW,
        )
        return self.escrow

    def key(self, job: str | int, requester: str = "requester", generation: int = 0) -> bytes:
        """The escrow key of job `job` funded by actor `requester` (its address leads)."""
        return job_key(job, self.actors[requester].address, generation)

    def voucher(
        self, key: bytes, provider: str, attempt: int, *, expiry_in: int = 3600, signer=None
    ) -> Voucher:
        """The node's voucher for `provider` at `attempt`, for the key's current deposit."""
        funding = self.escrow.get_job(key).funding
        return self.escrow.sign_assignment(
            signer or self.actors["node"],
            key,
            self.actors[provider].address,
            attempt,
            funding,
            self.now() + expiry_in,
        )

    def deploy_wallet(self) -> str:
        """Deploy a `TestWallet` owned by the deployer; returns its address."""
        import json

        spec = json.loads((Path(__file__).parent / "contracts" / "TestWallet.json").read_text())
        acct = self.actors["deployer"]
        block = self.w3.eth.get_block("latest")
        tx = {
            "chainId": self.w3.eth.chain_id,
            "data": spec["bytecode"],
            "value": 0,
            "gas": 1_500_000,
            "nonce": self.w3.eth.get_transaction_count(acct.address),
            "maxFeePerGas": 2 * block["baseFeePerGas"] + 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
        tx_hash = self.w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        assert receipt["status"] == 1
        self.wallet_abi = spec["abi"]
        return receipt["contractAddress"]

    def wallet_call(self, wallet: str, fn: str, *args, value: int = 0) -> dict:
        """The deployer makes its wallet contract call `fn` (exec / configure)."""
        contract = self.w3.eth.contract(address=wallet, abi=self.wallet_abi)
        acct = self.actors["deployer"]
        block = self.w3.eth.get_block("latest")
        tx = getattr(contract.functions, fn)(*args).build_transaction(
            {
                "from": acct.address,
                "value": value,
                "gas": 800_000,
                "nonce": self.w3.eth.get_transaction_count(acct.address),
                "maxFeePerGas": 2 * block["baseFeePerGas"] + 10**9,
                "maxPriorityFeePerGas": 10**9,
                "chainId": self.w3.eth.chain_id,
            }
        )
        tx_hash = self.w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
        return self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)

    def now(self) -> int:
        if self.tester is not None:  # direct, skipping web3's middleware: much faster
            return int(self.tester.get_block_by_number("latest")["timestamp"])
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def travel_to(self, ts: int) -> None:
        """Make the latest block's timestamp `ts` (later blocks are later still)."""
        if self.tester is not None:
            self.tester.time_travel(ts)
        else:
            self.w3.provider.make_request("evm_setNextBlockTimestamp", [ts])
            self.w3.provider.make_request("evm_mine", [])

    def travel(self, seconds: int) -> None:
        self.travel_to(self.now() + seconds)

    def balance(self, who: str | LocalAccount) -> int:
        address = who if isinstance(who, str) else who.address
        if self.tester is not None:
            return int(self.tester.get_balance(address))
        return int(self.w3.eth.get_balance(address))


def new_actors(w3: Web3, fund) -> dict[str, LocalAccount]:
    actors = {name: Account.create() for name in ACTORS}
    for acct in actors.values():
        fund(acct.address)
    return actors


def in_process() -> Harness:
    provider = EthereumTesterProvider()
    w3 = Web3(provider)
    funder = w3.eth.accounts[0]

    def fund(address: str) -> None:
        w3.eth.send_transaction({"from": funder, "to": address, "value": START_BALANCE})

    return Harness(w3, "eth-tester", new_actors(w3, fund), tester=provider.ethereum_tester)


def over_http(url: str) -> Harness:
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))

    def fund(address: str) -> None:
        w3.provider.make_request("hardhat_setBalance", [address, hex(START_BALANCE)])

    return Harness(w3, "hardhat", new_actors(w3, fund))


def hardhat_available() -> bool:
    return HARDHAT.exists() and shutil.which("node") is not None


class HardhatNode:
    """`hardhat node` on a free loopback port, started and killed by pid."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.setdefault("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
        for var, sub in (
            ("XDG_CACHE_HOME", "cache"),
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_DATA_HOME", "data"),
        ):
            env.setdefault(var, str(ROOT / ".cache" / f"xdg-{sub}"))
        self.log = (workdir / "hardhat-node.log").open("wb")
        self.proc = subprocess.Popen(
            [str(HARDHAT), "node", "--hostname", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 2}))
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hardhat node exited: see {self.log.name}")
            try:
                w3.eth.chain_id  # noqa: B018
                return
            except Exception:  # noqa: BLE001
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("hardhat node did not start within 60 s") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()
