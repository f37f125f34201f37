"""Benchmark: YOLO training on a GPU through the node and the provider daemon, against a
plain Ultralytics `train()` with the same data and settings, in one run.

Two workloads (issue 17 item 5, issue 12's GPU line):
- `demo`: the `make demo` task (yolov8n-cls from scratch on the synthetic shapes set);
- `detect640`: yolov8n from scratch on a synthetic detection set of `--images` training
  images (and a fifth as many for validation) at 640 px.

For each: (a) plain `YOLO(cfg).train()` in this process with the settings the executor
would choose here (device, batch, dataloader workers, mixed precision, seed); (b) the same
job uploaded to a real `dcm serve`, funded, claimed and trained by the real provider daemon
(its executor's per-epoch times come back in the result's `metrics.json`). Epoch times on
both sides are Ultralytics' own `trainer.epoch_time` (training plus validation of the
epoch). GPU utilization and memory are sampled with NVML every 100 ms and summarised over
each run's epochs. The first epoch (CUDA and cuDNN warm-up) is reported but left out of
the medians the ratio compares; each side runs `--repeats` times, in alternating order.
Target (issue 12): node epoch time at most 1.05x plain.

    PYTHONPATH=. python bench/gpu_training.py                      # on a GPU machine
    PYTHONPATH=. python bench/gpu_training.py --smoke --allow-cpu  # the script itself, on CPU

Prints the figures and writes bench/results/gpu_training.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._node import served_node  # noqa: E402
from dcm import demo  # noqa: E402
from marketplace.datasets.synthetic import (  # noqa: E402
    SHAPES,
    write_detection_dataset,
    write_shapes_dataset,
)
from worker.executors.yolo import (  # noqa: E402
    choose_batch,
    choose_device,
    choose_workers,
    import_ultralytics,
    offline_environment,
)
from worker.hardware import detect_hardware  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "gpu_training.json"
DETECT_CLASSES = ["red", "blue"]


@dataclass(frozen=True)
class Workload:
    name: str
    model: str  # the job's model name; Ultralytics config `<model>.yaml`
    epochs: int
    imgsz: int
    classes: list[str]
    train_images: int
    write: Callable[[Path], Path]
    metric: str  # the validation metric that shows learning


class GpuSampler:
    """NVML samples of GPU 0 every `interval` s in a thread: (unix time, util %, MiB)."""

    def __init__(self, interval: float = 0.1) -> None:
        import pynvml  # nvidia-ml-py, an Ultralytics dependency

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        self.name = pynvml.nvmlDeviceGetName(self._handle)
        self.samples: list[tuple[float, int, float]] = []
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nvml", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        nvml, handle = self._nvml, self._handle
        while not self._stop.wait(self._interval):
            util = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
            used = nvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
            self.samples.append((time.time(), int(util), used))

    def over(self, start: float, end: float) -> dict[str, Any]:
        inside = [s for s in self.samples if start <= s[0] <= end]
        if not inside:
            return {"samples": 0}
        utils = [s[1] for s in inside]
        return {
            "samples": len(inside),
            "util_mean_percent": round(statistics.fmean(utils), 1),
            "util_median_percent": statistics.median(utils),
            "memory_max_mib": round(max(s[2] for s in inside)),
        }

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._nvml.nvmlShutdown()


def _summary(epoch_seconds: list[float]) -> dict[str, Any]:
    steady = epoch_seconds[1:] or epoch_seconds
    return {
        "epoch_seconds": [round(s, 3) for s in epoch_seconds],
        "first_epoch_seconds": round(epoch_seconds[0], 3),
        "median_epoch_seconds": round(statistics.median(steady), 3),
    }


def plain_train(
    work: Workload,
    dataset: Path,
    base: Path,
    settings: dict,
    gpu: Any,
    tag: str,
    in_thread: bool = False,
) -> dict:
    """`YOLO(cfg).train()` as a user would run it, timing each epoch with a callback;
    `in_thread`: in a background thread while this one waits, as the executor trains."""
    from ultralytics import YOLO

    if work.name == "demo":
        data = str(dataset)  # classification: the folder with train/ and val/
    else:
        data_yaml = base / f"{work.name}-data{tag}.yaml"
        data_yaml.write_text(
            json.dumps(
                {"path": str(dataset), "train": "images/train", "val": "images/val"}
                | {"names": work.classes}
            )
        )
        data = str(data_yaml)
    epochs: list[tuple[float, float]] = []  # (wall end, trainer.epoch_time)
    starts: list[float] = []
    model = YOLO(f"{work.model}.yaml")
    model.add_callback("on_train_epoch_start", lambda trainer: starts.append(time.time()))
    model.add_callback(
        "on_fit_epoch_end",
        lambda trainer: epochs.append((time.time(), float(trainer.epoch_time or 0.0))),
    )
    args = {"data": data, "epochs": work.epochs, "project": str(base), **settings}
    args["name"] = f"plain-{work.name}{tag}{'-thread' if in_thread else ''}"
    t0 = time.perf_counter()
    if in_thread:
        done: list[Any] = []
        thread = threading.Thread(target=lambda: done.append(model.train(**args)))
        thread.start()
        while thread.is_alive():
            thread.join(0.2)
        trainer_metrics = done[0]
    else:
        trainer_metrics = model.train(**args)
    wall = time.perf_counter() - t0
    per_epoch = [e[1] for e in epochs[: work.epochs]]
    out = {**_summary(per_epoch), "wall_seconds": round(wall, 3)}
    if gpu is not None:
        out["gpu"] = gpu.over(starts[0], epochs[work.epochs - 1][0])
    results = getattr(trainer_metrics, "results_dict", None) or {}
    out["final_metrics"] = {k: round(float(v), 4) for k, v in results.items()}
    return out


def executor_train(work: Workload, dataset: Path, base: Path, tag: str, config_dir: Path) -> dict:
    """The provider's executor alone, in this process (no daemon, no node)."""
    from worker.executors import JobSpec, RecordingReporter
    from worker.executors.yolo import YoloExecutor

    spec = {"model": work.model, "epochs": work.epochs, "imgsz": work.imgsz}
    spec |= {"export_format": "pt", "classes": ",".join(work.classes)}
    job = JobSpec(f"bench{tag}", 1, "yolo_training", spec, dataset)
    result = YoloExecutor(config_dir=config_dir).run(
        job, base / f"executor-{work.name}{tag}", RecordingReporter()
    )
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    return _summary(metrics["epoch_seconds"])


def node_train(work: Workload, dataset: Path, url: str, base: Path, gpu: Any, tag: str) -> dict:
    """The same job through the node: upload, fund, the daemon claims and trains it."""
    import httpx
    from eth_account import Account

    from marketplace.sdk.client import NodeClient
    from worker.daemon import DaemonConfig, ProviderDaemon
    from worker.executors import default_executors

    requester, provider = Account.create(), Account.create()
    for account in (requester, provider):
        httpx.post(url + "/chain/faucet", json={"address": account.address, "amount": "1"})
    client = NodeClient(url, timeout=300)
    client.sign_in(requester)
    job = client.upload_dataset_job(
        dataset,
        model=work.model,
        epochs=work.epochs,
        imgsz=work.imgsz,
        classes=work.classes,
        reward="0.001",
        requester_address=requester.address,
        export_format="pt",
    )
    if job["dcm_status"] == "awaiting_funding":
        client.fund(job["id"], requester)
        client.wait_for(job["id"], {"pending"}, timeout=60)
    config = DaemonConfig(
        node_url=url,
        workdir=base / f"provider-{work.name}{tag}",
        run_once=True,
        claim_wait_seconds=5,
        grace_seconds=600,
    )

    async def run() -> None:
        async with ProviderDaemon(config, provider, default_executors()) as daemon:
            await daemon.run()

    asyncio.run(run())
    detail = client.job(job["id"])
    if detail["status"] != "submitted":
        raise SystemExit(f"{work.name}: job ended {detail['status']}: {detail.get('error')}")
    result_dir = base / f"result-{work.name}{tag}"
    client.download_directory(detail["result"]["result_cid"], result_dir)
    metrics = json.loads((result_dir / "metrics.json").read_text())

    def at(event: dict) -> float:
        return dt.datetime.fromisoformat(event["createdAt"].replace("Z", "+00:00")).timestamp()

    events = detail["events"]
    kinds = {e["type"]: at(e) for e in events}
    epoch_events = [
        at(e)
        for e in events
        if e["type"] == "progress" and (e.get("message") or "").startswith("Epoch")
    ]
    per_epoch = metrics["epoch_seconds"]
    out = {
        **_summary(per_epoch),
        "claim_to_submitted_seconds": round(kinds["submitted"] - kinds["claimed"], 3),
        "log_events": sum(1 for e in events if e["type"] == "log"),
        "device": metrics.get("device"),
        "device_name": metrics.get("device_name"),
        "batch": metrics.get("batch"),
        "workers": metrics.get("workers"),
        "amp": metrics.get("amp"),
        "learned": {
            work.metric: [
                (metrics.get("per_epoch") or [{}])[0].get(work.metric),
                (metrics.get("per_epoch") or [{}])[-1].get(work.metric),
            ]
        },
    }
    if gpu is not None and epoch_events:
        # progress reaches the node as each epoch ends: the first began one epoch earlier
        out["gpu"] = gpu.over(epoch_events[0] - per_epoch[0], epoch_events[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400, help="detect640 training images")
    parser.add_argument("--epochs", type=int, default=6, help="detect640 epochs")
    parser.add_argument("--only", choices=["demo", "detect640"], default=None)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side, alternating")
    parser.add_argument(
        "--variants",
        default="plain,node",
        help="comma-separated, in order: plain, node, and for diagnosis plain_thread "
        "(train() in a background thread) and executor (the executor alone, in process)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script")
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    smoke = args.smoke
    workloads = [
        Workload(
            "demo",
            demo.MODEL,
            2 if smoke else demo.EPOCHS,
            demo.IMGSZ,
            list(SHAPES),
            (8 if smoke else demo.TRAIN_PER_CLASS) * len(SHAPES),
            lambda root: write_shapes_dataset(
                root,
                train=8 if smoke else demo.TRAIN_PER_CLASS,
                val=4 if smoke else demo.VAL_PER_CLASS,
                size=demo.IMGSZ,
            ),
            demo.METRIC,
        ),
        Workload(
            "detect640",
            "yolov8n",
            2 if smoke else args.epochs,
            64 if smoke else 640,
            DETECT_CLASSES,
            8 if smoke else args.images,
            lambda root: write_detection_dataset(
                root,
                train=8 if smoke else args.images,
                val=4 if smoke else max(1, args.images // 5),
                size=64 if smoke else 640,
            ),
            "mAP50",
        ),
    ]
    workloads = [w for w in workloads if args.only in (None, w.name)]

    base = Path(tempfile.mkdtemp(prefix="dcm-bench-gpu-"))
    config_dir = base / "ultralytics"
    doc: dict[str, Any] = {"benchmark": "gpu_training", "workloads": {}}
    with offline_environment(config_dir):
        import_ultralytics(config_dir)
        import torch

        device = choose_device(None)
        if device == "cpu" and not args.allow_cpu:
            raise SystemExit("no CUDA GPU visible (torch.cuda.is_available() is False)")
        gpu = GpuSampler() if device != "cpu" else None
        doc["machine"] = {
            "gpu": gpu.name if gpu else None,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            **{
                k: v
                for k, v in detect_hardware(base).items()
                if k in ("cpu_cores", "cpu_model", "memory_bytes")
            },
        }
        with served_node(base / "node") as url:
            for work in workloads:
                settings = {
                    "imgsz": work.imgsz,
                    "batch": choose_batch(None, work.train_images, device),
                    "device": device,
                    "workers": choose_workers(),
                    "amp": device != "cpu",
                    "plots": False,
                    "seed": 0,
                }
                variants = args.variants.split(",")
                runs: dict[str, list[dict]] = {v: [] for v in variants}
                for r in range(args.repeats):
                    for side in variants if r % 2 == 0 else variants[::-1]:
                        # a fresh copy of the same bytes each time: plain train() writes label
                        # caches into the folder it trains on, which an upload rightly refuses
                        dataset = work.write(base / f"{work.name}-{side}{r}")
                        tag = str(r)
                        if side in ("plain", "plain_thread"):
                            run = plain_train(
                                work, dataset, base, settings, gpu, tag, side == "plain_thread"
                            )
                        elif side == "executor":
                            run = executor_train(work, dataset, base, tag, config_dir)
                        else:
                            run = node_train(work, dataset, url, base, gpu, tag)
                        runs[side].append(run)
                steady = {
                    side: statistics.median(
                        s for run in side_runs for s in (run["epoch_seconds"][1:])
                    )
                    for side, side_runs in runs.items()
                }
                ratio = steady["node"] / steady["plain"] if "node" in steady else float("nan")
                doc["workloads"][work.name] = {
                    "settings": {**settings, "model": work.model, "epochs": work.epochs},
                    "train_images": work.train_images,
                    "repeats": args.repeats,
                    "runs": runs,
                    "median_epoch_seconds": {k: round(v, 3) for k, v in steady.items()},
                    "epoch_ratio_node_to_plain": round(ratio, 3),
                    "ratios_to_plain": {
                        side: round(steady[side] / steady["plain"], 3) for side in steady
                    },
                    "per_repeat_ratios": [
                        round(n["median_epoch_seconds"] / p["median_epoch_seconds"], 3)
                        for p, n in zip(runs["plain"], runs.get("node", []), strict=False)
                    ],
                    "within_target_1_05": ratio <= 1.05,
                }
                print(json.dumps({work.name: doc["workloads"][work.name]}, indent=2), flush=True)
        if gpu is not None:
            gpu.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    try:
        main()
    finally:
        for leftover in Path(tempfile.gettempdir()).glob("dcm-bench-gpu-*"):
            shutil.rmtree(leftover, ignore_errors=True)
