"""Where a run trains and how big its batches are.

Every visible CUDA GPU (CUDA_VISIBLE_DEVICES applies), else the CPU; 16 images per GPU per
batch unless the job asks, never more than the training set, and a multiple of the GPU
count for multi-GPU (DDP) runs, which split each batch evenly across ranks. The functions
take the facts they read (the torch module, the core count) as arguments so that they can
be checked without a GPU.
"""

from __future__ import annotations

import contextlib
from typing import Any

BATCH_PER_DEVICE = 16
MAX_WORKERS = 8


def _torch(torch: Any | None) -> Any:
    if torch is None:
        import torch
    return torch


def visible_cuda_devices(torch: Any | None = None) -> int:
    """How many CUDA GPUs this process sees (0 without CUDA)."""
    torch = _torch(torch)
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def choose_device(override: str | None = None, *, torch: Any | None = None) -> str:
    """`"0,1,..."` for all visible CUDA GPUs, else `"cpu"` (or the override)."""
    if override:
        return override
    count = visible_cuda_devices(torch)
    return ",".join(str(i) for i in range(count)) if count else "cpu"


def choose_batch(requested: int | None, train_images: int, device: str) -> int:
    """The requested batch, else 16 per GPU (16 on CPU); never above the training set size;
    a multiple of the GPU count for multi-GPU runs."""
    gpus = 0 if device == "cpu" else len(device.split(","))
    batch = requested or BATCH_PER_DEVICE * max(gpus, 1)
    batch = max(1, min(batch, train_images))
    if gpus > 1:
        batch = max(gpus, batch - batch % gpus)
    return batch


def choose_workers(cores: int | None = None) -> int:
    """Dataloader workers: none on two cores or fewer (they only compete with training),
    else one per core but one, at most 8."""
    if cores is None:
        from worker.hardware import cpu_cores

        cores = cpu_cores()
    return 0 if cores <= 2 else min(MAX_WORKERS, cores - 1)


def device_name(device: str, *, torch: Any | None = None) -> str:
    """The GPUs' names for `metrics.json` (`"cpu"` on the CPU; the device string itself if
    CUDA cannot name them)."""
    if device == "cpu":
        return "cpu"
    with contextlib.suppress(Exception):
        torch = _torch(torch)
        return ", ".join(torch.cuda.get_device_name(int(i)) for i in device.split(","))
    return device
