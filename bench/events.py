"""Job event fan-out (issue 13): latency from a provider's progress write to its arrival
at 100 stream followers and at a webhook receiver (p50, p99), webhook deliveries per
second, and POST /v1/jobs with and without a webhook receiver that never answers.

    PYTHONPATH=. .venv/bin/python bench/events.py [--database-url postgresql://...]

Writes bench/results/events.json (events_postgresql.json with a database URL). CPU-heavy
(100 followers, one node, on loopback)."""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from marketplace.sdk.events import parse_frames  # noqa: E402
from tests.fixtures.jobflow import create_job, leased_job, signed_in  # noqa: E402
from tests.fixtures.receiver import Receiver  # noqa: E402
from tests.fixtures.served import Served  # noqa: E402

FOLLOWERS = 100
WRITES = 60
SECRET = "whsec_bench_0123456789"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": pct(values, 0.5),
        "p99_ms": pct(values, 0.99),
        "mean_ms": round(statistics.fmean(values), 2),
    }


def subscribe(http: httpx.Client, headers: dict[str, str], url: str, events: list[str]) -> None:
    body = {"url": url, "events": events, "secret": SECRET}
    resp = http.post("/v1/webhooks", json=body, headers=headers)
    assert resp.status_code == 201, resp.text


def fanout(node: Served) -> dict[str, object]:
    leased = leased_job(node.url)
    receiver = Receiver()
    subscribe(leased.http, leased.requester, receiver.url, ["job.progress"])
    written: dict[str, float] = {}
    arrivals: list[float] = []

    async def run() -> None:
        limits = httpx.Limits(max_connections=FOLLOWERS + 10)
        async with httpx.AsyncClient(
            base_url=node.url, limits=limits, timeout=httpx.Timeout(60)
        ) as http:
            ready = asyncio.Semaphore(0)

            async def follower() -> None:
                async with http.stream(
                    "GET",
                    f"/v1/jobs/{leased.job_id}/events",
                    params={"follow": "true"},
                    headers=leased.requester,
                ) as resp:
                    block: list[str] = []
                    signalled = False
                    async for line in resp.aiter_lines():
                        if not signalled:
                            ready.release()
                            signalled = True
                        block.append(line)
                        if line:
                            continue
                        for frame in parse_frames(block):
                            if frame.event == "end":
                                return
                            message = (frame.json() or {}).get("message") or ""
                            if message in written:
                                arrivals.append((time.perf_counter() - written[message]) * 1000)
                        block = []

            tasks = [asyncio.create_task(follower()) for _ in range(FOLLOWERS)]
            for _ in range(FOLLOWERS):
                await asyncio.wait_for(ready.acquire(), 120)
            await asyncio.sleep(0.5)

            def write() -> None:
                for i in range(WRITES):
                    message = f"bench {i}"
                    written[message] = time.perf_counter()
                    leased.progress(i * 100 / WRITES, message)
                    time.sleep(0.05)
                time.sleep(1.0)
                leased.http.post(f"/v1/jobs/{leased.job_id}/cancel", headers=leased.requester)

            await asyncio.to_thread(write)
            await asyncio.gather(*tasks)

    asyncio.run(run())
    calls = receiver.wait_for(WRITES, timeout=120)
    hook_latency = []
    for call in calls:
        message = json.loads(call["body"])["data"]["event"]["message"]
        hook_latency.append((call["at_perf"] - written[message]) * 1000)
    receiver.close()
    return {
        "followers": FOLLOWERS,
        "writes": WRITES,
        "follower_latency": summary(arrivals),
        "follower_frames": len(arrivals),
        "webhook_latency": summary(hook_latency),
    }


def throughput(node: Served, subscriptions: int = 10, jobs: int = 60) -> dict[str, object]:
    http = httpx.Client(base_url=node.url, timeout=60)
    headers, _ = signed_in(node.url)
    receiver = Receiver()
    for _ in range(subscriptions):
        subscribe(http, headers, receiver.url, ["job.created"])
    started = time.perf_counter()
    for _ in range(jobs):
        create_job(http, headers)
    written = time.perf_counter()
    calls = receiver.wait_for(subscriptions * jobs, timeout=300)
    first = min(c["at_perf"] for c in calls)
    last = max(c["at_perf"] for c in calls)
    receiver.close()
    return {
        "deliveries": len(calls),
        "writes_seconds": round(written - started, 3),
        "deliveries_per_second": round(len(calls) / max(last - first, 1e-6), 1),
        "deliveries_per_second_from_first_write": round(len(calls) / (last - started), 1),
    }


def creates(node: Served, n: int = 200) -> dict[str, object]:
    """POST /v1/jobs by three requesters in turn: one with no webhook, one subscribed to a
    receiver that answers, one subscribed to a receiver that accepts connections and never
    answers. All three share the same moments of the run, so the machine's noise falls on
    them alike. Healthy against dead isolates the dead receiver; none against healthy is
    the cost of having a subscription (its outbox rows commit with the job)."""
    http = httpx.Client(base_url=node.url, timeout=60)
    receivers = {"healthy": Receiver(), "dead": Receiver(hang=True)}
    headers = {side: signed_in(node.url)[0] for side in ("none", "healthy", "dead")}
    for side, receiver in receivers.items():
        subscribe(http, headers[side], receiver.url, ["job.*"])
    times: dict[str, list[float]] = {side: [] for side in headers}
    for _ in range(n):
        for side, side_headers in headers.items():
            t0 = time.perf_counter()
            create_job(http, side_headers)
            times[side].append((time.perf_counter() - t0) * 1000)
    for receiver in receivers.values():
        receiver.close()
    out: dict[str, object] = {side: summary(values) for side, values in times.items()}
    for a_side, b_side in (("dead", "healthy"), ("healthy", "none"), ("dead", "none")):
        a_sum, b_sum = summary(times[a_side]), summary(times[b_side])
        out[f"{a_side}_vs_{b_side}"] = {
            "p50": round(a_sum["p50_ms"] / b_sum["p50_ms"], 2),
            "p99": round(a_sum["p99_ms"] / b_sum["p99_ms"], 2),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        node = Served(Path(tmp) / "node", args.database_url)
        try:
            result: dict[str, object] = {
                "bench": "events",
                "database": "postgresql" if args.database_url else "sqlite",
                "machine": f"{platform.machine()} {platform.python_version()}",
                "fanout": fanout(node),
                "webhook_throughput": throughput(node),
                "post_jobs": creates(node),
            }
        except BaseException:
            print(node.log()[-4000:], file=sys.stderr)
            raise
        finally:
            node.stop()
    name = "events_postgresql.json" if args.database_url else "events.json"
    out = REPO / "bench" / "results" / name
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
