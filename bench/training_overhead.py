"""Benchmark: the YOLO executor's overhead over a plain Ultralytics `train()`.

For the same tiny synthetic dataset and the same settings, in the same process, times
(a) `YOLO("yolov8n.yaml").train(...)` as a user would run it, and
(b) `YoloExecutor().run(...)`: dataset checks and view, training with progress callbacks,
    export to the requested format, artifacts and `metrics.json`;
plus (b') the executor with no export, to separate export time from the executor's own cost.
Ultralytics is imported and one warm-up training is run before timing; the variants alternate
order on each repeat. Then (c) claim -> submitted: the same training job (same data and
settings, ONNX export) run by the real provider daemon against a real `dcm serve`, from the
`claimed` to the `submitted` event on the node's clock (lease, on-chain bind, dataset fetch
and CID check, training, export, pinning the artifacts, on-chain submit). Issue 5's target:
(c) at most 1.15x plain + 3 s.

    PYTHONPATH=. .venv/bin/python bench/training_overhead.py --repeats 3

Prints the figures and writes bench/results/training_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from marketplace.datasets.synthetic import write_detection_dataset  # noqa: E402
from worker.executors import JobSpec, RecordingReporter  # noqa: E402
from worker.executors.yolo import (  # noqa: E402
    YoloExecutor,
    choose_batch,
    choose_device,
    choose_workers,
    import_ultralytics,
    offline_environment,
)
from worker.hardware import detect_hardware  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "training_overhead.json"


def claim_to_submitted(
    dataset: Path, repeats: int, model: str, epochs: int, imgsz: int, export: str
) -> list[float]:
    """Seconds from the `claimed` to the `submitted` event (server clock) of training jobs
    run by the real daemon against a real `dcm serve`: lease, on-chain bind, dataset fetch
    and CID check, training, export, pinning the artifacts, on-chain submit, result."""
    import asyncio
    import datetime as dt

    import httpx
    from eth_account import Account

    from bench._node import served_node
    from marketplace.sdk.client import NodeClient
    from worker.daemon import DaemonConfig, ProviderDaemon
    from worker.executors import default_executors

    base = Path(tempfile.mkdtemp(prefix="dcm-bench-train-"))
    with served_node(base / "node") as url:
        requester, provider = Account.create(), Account.create()
        for account in (requester, provider):
            httpx.post(url + "/chain/faucet", json={"address": account.address, "amount": "1"})
        client = NodeClient(url)
        client.sign_in(requester)
        seconds = []
        for i in range(repeats):
            job = client.upload_dataset_job(
                dataset,
                model=model,
                epochs=epochs,
                imgsz=imgsz,
                classes=["red", "blue"],
                reward="0.001",
                requester_address=requester.address,
                export_format=export,
            )
            if job["dcm_status"] == "awaiting_funding":
                client.fund(job["id"], requester)
                client.wait_for(job["id"], {"pending"}, timeout=60)
            config = DaemonConfig(
                node_url=url,
                workdir=base / f"provider{i}",
                run_once=True,
                claim_wait_seconds=5,
                grace_seconds=600,
            )

            async def run(config: DaemonConfig = config) -> None:
                async with ProviderDaemon(config, provider, default_executors()) as daemon:
                    await daemon.run()

            asyncio.run(run())
            events = {e["type"]: e for e in client.job(job["id"])["events"]}

            def at(kind: str, events: dict = events) -> dt.datetime:
                return dt.datetime.fromisoformat(events[kind]["createdAt"].replace("Z", "+00:00"))

            seconds.append((at("submitted") - at("claimed")).total_seconds())
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--train-images", type=int, default=16)
    parser.add_argument("--val-images", type=int, default=8)
    parser.add_argument("--model", default="yolov8n")
    parser.add_argument("--export", default="onnx")
    parser.add_argument("--device", default=None, help="default: all visible GPUs, else cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--daemon-repeats",
        type=int,
        default=2,
        help="jobs run through a real node + provider daemon (claim -> submitted); 0 to skip",
    )
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="dcm-bench-train-"))
    config_dir = base / "ultralytics"
    dataset = write_detection_dataset(
        base / "dataset", train=args.train_images, val=args.val_images, size=args.imgsz
    )
    data_yaml = base / "plain-data.yaml"
    data_yaml.write_text(
        json.dumps(
            {
                "path": str(dataset),
                "train": "images/train",
                "val": "images/val",
                "names": ["red", "blue"],
            }
        )
    )
    with offline_environment(config_dir):
        import_ultralytics(config_dir)
        from ultralytics import YOLO

        device = choose_device(args.device)
        settings = {
            "epochs": args.epochs,
            "imgsz": args.imgsz,
            "batch": choose_batch(None, args.train_images, device),
            "device": device,
            "workers": choose_workers(),
            "amp": device != "cpu",
            "plots": False,
            "seed": 0,
        }

        def plain(tag: str) -> float:
            t0 = time.perf_counter()
            YOLO(f"{args.model}.yaml").train(
                data=str(data_yaml), project=str(base), name=tag, exist_ok=True, **settings
            )
            return time.perf_counter() - t0

        def executor(tag: str, export: str) -> tuple[float, dict]:
            job = JobSpec(
                tag,
                1,
                "yolo_training",
                {
                    "model": args.model,
                    "epochs": args.epochs,
                    "imgsz": args.imgsz,
                    "export_format": export,
                    "classes": "red,blue",
                },
                dataset,
            )
            t0 = time.perf_counter()
            result = YoloExecutor(config_dir=config_dir, device=device).run(
                job, base / tag, RecordingReporter()
            )
            elapsed = time.perf_counter() - t0
            return elapsed, json.loads((result.output_dir / "metrics.json").read_text())

        plain("warmup")
        runs: dict[str, list[float]] = {"plain": [], "executor": [], "executor_no_export": []}
        epoch_seconds: list[list[float]] = []
        export_seconds: list[float] = []
        for i in range(args.repeats):
            order = ["plain", "executor", "executor_no_export"]
            if i % 2:
                order.reverse()
            for variant in order:
                if variant == "plain":
                    runs["plain"].append(plain(f"plain{i}"))
                elif variant == "executor":
                    elapsed, metrics = executor(f"exec{i}", args.export)
                    runs["executor"].append(elapsed)
                    epoch_seconds.append(metrics["epoch_seconds"])
                    export_seconds.append(metrics["export"]["seconds"])
                else:
                    runs["executor_no_export"].append(executor(f"execpt{i}", "pt")[0])

    if args.daemon_repeats:
        # A pristine copy of the same data: plain train() writes labels/*.cache into the
        # folder it trains on, which the node's upload validation rightly refuses.
        pristine = write_detection_dataset(
            base / "dataset-upload", train=args.train_images, val=args.val_images, size=args.imgsz
        )
        runs["claim_to_submitted"] = claim_to_submitted(
            pristine, args.daemon_repeats, args.model, args.epochs, args.imgsz, args.export
        )

    med = {k: statistics.median(v) for k, v in runs.items()}
    ratio = med["executor"] / med["plain"]
    doc = {
        "benchmark": "training_overhead",
        "description": "median wall seconds: plain YOLO(...).train() vs YoloExecutor.run() "
        "(dataset view, training, export, artifacts) on the same data and settings",
        "settings": {
            **settings,
            "model": args.model,
            "export": args.export,
            "train_images": args.train_images,
            "val_images": args.val_images,
            "repeats": args.repeats,
        },
        "seconds": {k: [round(x, 3) for x in v] for k, v in runs.items()},
        "median_seconds": {k: round(v, 3) for k, v in med.items()},
        "ratio_executor_to_plain": round(ratio, 3),
        "overhead_seconds": round(med["executor"] - med["plain"], 3),
        "overhead_without_export_seconds": round(med["executor_no_export"] - med["plain"], 3),
        "export_seconds": [round(x, 3) for x in export_seconds],
        "executor_epoch_seconds": epoch_seconds,
        "target": "claim->submitted <= 1.15 x plain + 3 s",
        "executor_within_target": med["executor"] <= 1.15 * med["plain"] + 3.0,
        "claim_to_submitted_ratio_to_plain": (
            round(med["claim_to_submitted"] / med["plain"], 3)
            if "claim_to_submitted" in med
            else None
        ),
        "claim_to_submitted_within_target": (
            med["claim_to_submitted"] <= 1.15 * med["plain"] + 3.0
            if "claim_to_submitted" in med
            else None
        ),
        "machine": {
            k: v
            for k, v in detect_hardware(base).items()
            if k in ("cpu_cores", "cpu_model", "memory_bytes", "gpus", "cuda_version", "packages")
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: doc[k]
                for k in (
                    "median_seconds",
                    "ratio_executor_to_plain",
                    "overhead_seconds",
                    "overhead_without_export_seconds",
                    "export_seconds",
                    "executor_within_target",
                    "claim_to_submitted_ratio_to_plain",
                    "claim_to_submitted_within_target",
                )
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    try:
        main()
    finally:
        for leftover in Path(tempfile.gettempdir()).glob("dcm-bench-train-*"):
            shutil.rmtree(leftover, ignore_errors=True)
