"""Abuse cases against a live `dcm serve` on loopback: does one client take the node down?

Starts `dcm serve` (embedded defaults, development mode, a fresh data dir) on a free
loopback port, then fires each case of `CASES` in turn. While a case runs, the server's
RSS is sampled from /proc/<pid>/status; after it, the node must still answer /healthz.
Prints one row per case (requests sent, status codes seen, RSS before/peak/after,
alive) and writes bench/results/abuse.json. Targets: alive after every case, no 5xx,
peak RSS growth under 128 MiB in any case.

Every case is one function taking the `Bench` context, so more cases (authorization,
say) are one function and one table row each. Every loop is capped in count and in
time (`CASE_SECONDS`), and every request goes to 127.0.0.1.

Each case speaks as its own client address (`X-Forwarded-For`, which uvicorn trusts
from loopback as it would from a reverse proxy there), so one case's rate-limit buckets
do not decide the next case's answers. /healthz latency is probed from a separate
process (its own interpreter and connection) where a case says so.

    PYTHONPATH=. python bench/abuse.py [CASE ...]     # no names: every case
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from node.config import DEV_SECRET  # noqa: E402
from tests.fixtures.served import Served, dcm_env, run_dcm  # noqa: E402

CASE_SECONDS = 90.0  # no case runs longer than this, whatever its count
RSS_TARGET_MIB = 128
STALL_SECONDS = 2  # the node's body stall timeout for this run (default 30 s)
PASSWORD = "bench-password-1"
DEEP = b"[" * 100_000 + b"]" * 100_000
JSON = {"content-type": "application/json"}


# -- measuring -------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """Samples a process's RSS every few milliseconds while the block runs."""

    def __init__(self, pid: int, every: float = 0.01) -> None:
        self.pid, self.every = pid, every
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except OSError:  # the process is gone
                return
            time.sleep(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Bench:
    """What a case gets: the node's address, credentials, and a tally to record into."""

    served: Served
    url: str
    token: str
    client_ip: str = "10.255.0.1"
    deadline: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    notes: dict[str, Any] = field(default_factory=dict)

    def record(self, status: int | str) -> None:
        self.statuses[str(status)] += 1

    def left(self) -> bool:
        return time.monotonic() < self.deadline

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **self.me()}

    def me(self) -> dict[str, str]:
        """This case's client address."""
        return {"X-Forwarded-For": self.client_ip}

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response | None:
        kw["headers"] = {**self.me(), **kw.get("headers", {})}
        try:
            resp = httpx.request(method, self.url + path, timeout=60, **kw)
        except httpx.HTTPError as exc:
            self.record(type(exc).__name__)
            return None
        self.record(resp.status_code)
        return resp

    def post(self, path: str, **kw: Any) -> httpx.Response | None:
        return self.request("POST", path, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response | None:
        return self.request("GET", path, **kw)

    def jobs_stored(self) -> int:
        listed = httpx.get(self.url + "/v1/jobs", params={"limit": 100}, headers=self.auth())
        return len(listed.json()["data"])


# -- raw HTTP, for bodies a client library would not send as an attacker does ---------


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def raw_chunked(
    b: Bench, path: str, chunks: Iterator[bytes], *, finish: bool = True
) -> tuple[str, int]:
    """POST a chunked body while reading the answer; returns (status, body bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", b.served.port), timeout=CASE_SECONDS)
    sent = [0]
    auth = f"Authorization: Bearer {b.token}\r\nX-Forwarded-For: {b.client_ip}\r\n"

    def writer() -> None:
        try:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"{auth}Transfer-Encoding: chunked\r\n\r\n".encode()
            )
            for chunk in chunks:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent[0] += len(chunk)
            if finish:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the node answered and closed the connection

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    data = b""
    try:
        while not _complete(data):
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    except OSError as exc:
        return type(exc).__name__, sent[0]
    finally:
        sock.close()
        thread.join(CASE_SECONDS)
    if not data:
        return "closed-without-answer", sent[0]
    return data.split(b" ", 2)[1].decode(), sent[0]


def padding(total_mib: int) -> Iterator[bytes]:
    """A JSON object whose string grows to `total_mib` MiB, generated lazily."""
    yield b'{"type": "t", "payload": {"pad": "'
    for _ in range(total_mib * 16):
        yield b"x" * 65536
    yield b'"}}'


# -- cases --------------------------------------------------------------------------------


def deep_json(path: str, authenticated: bool = False) -> Callable[[Bench], None]:
    def case(b: Bench) -> None:
        headers = {**JSON, **(b.auth() if authenticated else {})}
        b.post(path, content=DEEP, headers=headers)

    case.__doc__ = f"JSON nested 100,000 deep to {path}"
    return case


def deep_json_seed001_patch(b: Bench) -> None:
    """JSON nested 100,000 deep (and 1,000-5,000) to the seed 001 PATCH of a real job"""
    job = httpx.post(
        b.url + "/workspace/1/jobs",
        json={"job_type": "data_processing", "workspace_id": 1},
        headers=b.auth(),
    ).json()
    path = f"/workspace/1/jobs/{job['job_id']}"
    for depth in (100_000, 1000, 5000):
        body = b'{"result": ' + b"[" * depth + b"]" * depth + b"}"
        b.request("PATCH", path, content=body, headers={**JSON, **b.auth()})


def moderately_deep_v1_jobs(b: Bench) -> None:
    """JSON nested 1,000 to 5,000 deep to POST /v1/jobs (the issue's 500s)"""
    for depth in (1000, 2000, 5000):
        body = b'{"type": "t", "payload": ' + b'{"n": ' * depth + b"1" + b"}" * depth + b"}"
        b.post("/v1/jobs", content=body, headers={**JSON, **b.auth()})


def non_interchange_json(b: Bench) -> None:
    """JSON Python parses but nothing can store or send back: NaN, Infinity, 1e999, \ud800"""
    before = b.jobs_stored()
    for value in ("NaN", "Infinity", "1e999", '"\\ud800"'):
        body = '{"type": "t", "payload": {"x": ' + value + "}}"
        b.post("/v1/jobs", content=body, headers={**JSON, **b.auth()})
    b.notes["jobs_stored_by_the_case"] = b.jobs_stored() - before


def chunked(path: str, mib: int) -> Callable[[Bench], None]:
    def case(b: Bench) -> None:
        before = b.jobs_stored()
        status, sent = raw_chunked(b, path, padding(mib))
        b.record(status)
        b.notes["client_bytes_out_before_the_answer"] = sent  # mostly socket buffers
        b.notes["jobs_stored_by_the_case"] = b.jobs_stored() - before

    case.__doc__ = f"{mib} MiB chunked JSON to {path}"
    return case


def stalled_body(b: Bench) -> None:
    """A chunked body that stops after its first bytes (node stall timeout: 2 s here)"""
    started = time.monotonic()
    status, _ = raw_chunked(b, "/v1/jobs", iter([b'{"type": "t"']), finish=False)
    b.record(status)
    b.notes["answered_after_s"] = round(time.monotonic() - started, 2)


def bad_logins_sequential(b: Bench) -> None:
    """200 bad logins, one after another, one client"""
    for i in range(200):
        if not b.left():
            break
        b.post("/auth/login", json={"username": f"user{i % 5}", "password": "wrong-password"})


def _probe(url: str, stop: Any, out: Any) -> None:
    """In a child process: GET /healthz every 50 ms until `stop` is set; send latencies."""
    latencies: list[float] = []
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                ok = client.get(url + "/healthz").status_code == 200
                latencies.append((time.perf_counter() - started) * 1000 if ok else -1.0)
            except httpx.HTTPError:
                latencies.append(-1.0)
            time.sleep(0.05)
    out.put(latencies)


class HealthProbe:
    """/healthz latency from another process while the block runs."""

    def __init__(self, url: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.stop, self.out = ctx.Event(), ctx.Queue()
        self.proc = ctx.Process(target=_probe, args=(url, self.stop, self.out), daemon=True)
        self.latencies: list[float] = []

    def __enter__(self) -> HealthProbe:
        self.proc.start()
        time.sleep(1.0)  # the child's interpreter is up and probing before the burst
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.latencies = self.out.get(timeout=60)
        self.proc.join(10)

    def summary(self) -> dict[str, Any]:
        ok = sorted(x for x in self.latencies if x >= 0)
        return {
            "healthz_probes": len(self.latencies),
            "healthz_failed": sum(1 for x in self.latencies if x < 0),
            "healthz_p50_ms": round(statistics.median(ok), 1) if ok else None,
            "healthz_p99_ms": round(ok[min(len(ok) - 1, int(len(ok) * 0.99))], 1) if ok else None,
            "healthz_max_ms": round(ok[-1], 1) if ok else None,
        }


async def _concurrent_logins(b: Bench, n: int, spoof_addresses: bool) -> None:
    async def attempt(client: httpx.AsyncClient, i: int) -> None:
        headers = {"X-Forwarded-For": f"10.{i // 250}.{i % 250}.9"} if spoof_addresses else b.me()
        body = {"username": f"victim{i}", "password": "wrong-password"}
        try:
            resp = await client.post(b.url + "/auth/login", json=body, headers=headers)
            b.record(resp.status_code)
        except httpx.HTTPError as exc:
            b.record(type(exc).__name__)

    limits = httpx.Limits(max_connections=n + 8, max_keepalive_connections=n + 8)
    async with httpx.AsyncClient(limits=limits, timeout=CASE_SECONDS) as client:
        started = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(attempt(client, i) for i in range(n))), CASE_SECONDS
        )
        b.notes["burst_seconds"] = round(time.perf_counter() - started, 2)


def _with_probe(b: Bench, run: Callable[[], None]) -> None:
    with HealthProbe(b.url) as probe:
        run()
    b.notes.update(probe.summary())


def concurrent_bad_logins(b: Bench) -> None:
    """256 concurrent bad logins from one client; /healthz probed every 50 ms meanwhile"""
    _with_probe(b, lambda: asyncio.run(_concurrent_logins(b, 256, spoof_addresses=False)))


def concurrent_bad_logins_many_addresses(b: Bench) -> None:
    """256 concurrent bad logins from 256 addresses: past the per-client limit, so each
    one waits for password hashing; /healthz probed every 50 ms meanwhile"""
    _with_probe(b, lambda: asyncio.run(_concurrent_logins(b, 256, spoof_addresses=True)))


def nonce_requests(b: Bench) -> None:
    """200 GET /auth/nonce, one client"""
    for _ in range(200):
        if not b.left():
            break
        b.get("/auth/nonce")


def faucet_spam(b: Bench) -> None:
    """100 faucet requests, one client, fresh receiving addresses"""
    from eth_account import Account

    for _ in range(100):
        if not b.left():
            break
        b.post("/chain/faucet", json={"address": Account.create().address, "amount": "0.001"})


def faucet_huge_amounts(b: Bench) -> None:
    """Faucet amounts 1e999999999, NaN, inf, -1, 100 digits, non-strings"""
    target = "0xe003212E9A5b41a923566b3E093fe1c3D1c68A5A"
    for amount in ("1e999999999", "NaN", "Infinity", "-1", "9" * 100, 1e308, None, ["1"]):
        b.post("/chain/faucet", json={"address": target, "amount": amount})


def big_uid_token(b: Bench) -> None:
    """A token signed with the dev secret naming uid 2**80, on three dialects"""
    now = int(time.time())
    claims = {"sub": "x", "uid": 2**80, "typ": "access", "jti": "j" * 32, "exp": now + 600}
    token = jwt.encode(claims, DEV_SECRET, algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}"}
    for path in ("/auth/me", "/v1/jobs?limit=1", "/workspace/1/jobs"):
        b.get(path, headers=headers)  # a dropped connection is recorded by its error name


def api_key_guessing(b: Bench) -> None:
    """200 guessed API keys, one client"""
    for i in range(200):
        if not b.left():
            break
        b.get("/v1/jobs?limit=1", headers={"Authorization": f"Bearer dcm_{i:043d}"})


CASES: list[tuple[str, Callable[[Bench], None]]] = [
    ("deep_json_login", deep_json("/auth/login")),
    ("deep_json_v1_jobs", deep_json("/v1/jobs", authenticated=True)),
    ("deep_json_seed001_patch", deep_json_seed001_patch),
    ("deep_json_chain_rpc", deep_json("/chain/rpc")),
    ("deep_json_kubo_rpc", deep_json("/api/v0/pin/add")),
    ("moderately_deep_v1_jobs", moderately_deep_v1_jobs),
    ("non_interchange_json_v1_jobs", non_interchange_json),
    ("chunked_5mib_v1_jobs", chunked("/v1/jobs", 5)),
    ("chunked_50mib_v1_jobs", chunked("/v1/jobs", 50)),
    ("chunked_400mib_login", chunked("/auth/login", 400)),
    ("stalled_body", stalled_body),
    ("bad_logins_200", bad_logins_sequential),
    ("bad_logins_256_concurrent", concurrent_bad_logins),
    ("bad_logins_256_concurrent_256_addrs", concurrent_bad_logins_many_addresses),
    ("nonce_200", nonce_requests),
    ("faucet_spam_100", faucet_spam),
    ("faucet_huge_amounts", faucet_huge_amounts),
    ("big_uid_token", big_uid_token),
    ("api_key_guessing_200", api_key_guessing),
]


# -- running ------------------------------------------------------------------------------


def alive(b: Bench) -> bool:
    if b.served.proc.poll() is not None:
        return False
    try:
        return httpx.get(b.url + "/healthz", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def start_node(data_dir: Path) -> Bench:
    env = dcm_env(data_dir, None)
    run_dcm(["user", "create", "bench", "--password-stdin"], env, stdin=PASSWORD + "\n")
    served = Served(data_dir, DCM_BODY__STALL_SECONDS=str(STALL_SECONDS))
    assert served.url.startswith("http://127.0.0.1:"), "loopback only"
    token = httpx.post(
        served.url + "/auth/login", json={"username": "bench", "password": PASSWORD}
    ).json()["access_token"]
    httpx.post(
        served.url + "/workspaces",
        json={"name": "bench"},
        headers={"Authorization": f"Bearer {token}"},
    ).raise_for_status()
    return Bench(served=served, url=served.url, token=token)


def run_case(b: Bench, index: int, name: str, case: Callable[[Bench], None]) -> dict[str, Any]:
    b.statuses, b.notes = Counter(), {}
    b.client_ip = f"10.200.{index}.1"
    b.deadline = time.monotonic() + CASE_SECONDS
    pid = b.served.proc.pid
    time.sleep(0.5)  # let the previous case's memory settle
    before = rss_mib(pid)
    started = time.perf_counter()
    with RssSampler(pid) as sampler:
        try:
            case(b)
        except Exception as exc:  # a case that breaks is reported, not fatal
            b.notes["case_error"] = f"{type(exc).__name__}: {exc}"[:300]
    elapsed = time.perf_counter() - started
    is_alive = alive(b)
    after = rss_mib(pid) if is_alive else 0.0
    peak = max(sampler.peak, before)
    statuses = dict(sorted(b.statuses.items()))
    return {
        "case": name,
        "what": (case.__doc__ or "").strip().splitlines()[0],
        "requests": sum(b.statuses.values()),
        "statuses": statuses,
        "rss_before_mib": round(before, 1),
        "rss_peak_mib": round(peak, 1),
        "rss_after_mib": round(after, 1),
        "peak_growth_mib": round(peak - before, 1),
        "seconds": round(elapsed, 2),
        "alive": is_alive,
        "no_5xx": not any(s.isdigit() and int(s) >= 500 for s in statuses),
        "notes": b.notes,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    head = f"{'case':38} {'sent':>5} {'statuses':34} {'before':>7} {'peak':>7} {'after':>7} alive"
    print(head)
    print("-" * len(head))
    for r in rows:
        codes = " ".join(f"{k}x{v}" for k, v in r["statuses"].items())
        print(
            f"{r['case']:38} {r['requests']:>5} {codes:34} {r['rss_before_mib']:>7.1f} "
            f"{r['rss_peak_mib']:>7.1f} {r['rss_after_mib']:>7.1f} {'yes' if r['alive'] else 'NO'}"
        )
        if r["notes"]:
            print(f"{'':38} {json.dumps(r['notes'])}")
    print("(RSS in MiB)")


def main() -> int:
    wanted = set(sys.argv[1:])
    cases = [(n, c) for n, c in CASES if not wanted or n in wanted]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        bench = start_node(Path(tmp) / "node")
        try:
            for index, (name, case) in enumerate(cases):
                rows.append(run_case(bench, index, name, case))
                print(f"  {name}: {rows[-1]['statuses']}", flush=True)
                if not rows[-1]["alive"]:  # nothing after a dead node would mean anything
                    print(bench.served.log()[-2000:])
                    break
        finally:
            bench.served.stop()
    print()
    print_table(rows)
    targets = {
        "alive_after_every_case": all(r["alive"] for r in rows),
        "no_5xx": all(r["no_5xx"] for r in rows),
        f"peak_rss_growth_under_{RSS_TARGET_MIB}_mib": all(
            r["peak_growth_mib"] < RSS_TARGET_MIB for r in rows
        ),
    }
    for name, ok in targets.items():
        print(f"target {name}: {'met' if ok else 'MISSED'}")
    out = ROOT / "bench" / "results" / "abuse.json"
    result = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "node": {"stall_seconds": STALL_SECONDS, "defaults": "embedded, development mode"},
        "case_seconds_cap": CASE_SECONDS,
        "targets": targets,
        "cases": rows,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
