"""What this provider machine can offer, as registered with the node.

`detect_hardware(work_dir)` returns a JSON-ready dict: CPU cores and model, RAM, free disk under
the work directory, and the GPUs training would use: from NVML (`pynvml`, shipped with the CUDA
build of torch as `nvidia-ml-py`) when it answers, else from `torch.cuda`, else none. GPUs hidden
by `CUDA_VISIBLE_DEVICES` are left out, since training cannot use them. Nothing here needs torch
or a GPU to be installed.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
from pathlib import Path
from typing import Any


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    with contextlib.suppress(AttributeError, OSError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_bytes() -> int:
    """Physical memory in bytes (0 when the platform does not say)."""
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return 0


def _visible_filter() -> tuple[bool, list[str]]:
    """(filtered?, entries) from CUDA_VISIBLE_DEVICES: indices or GPU UUIDs in CUDA's order."""
    raw = os.environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return False, []
    entries = []
    for item in raw.split(","):
        item = item.strip()
        if not item or item.startswith("-"):
            break  # CUDA stops at the first invalid entry
        entries.append(item)
    return True, entries


def _gpus_from_nvml() -> tuple[list[dict[str, Any]], str | None, str | None] | None:
    if importlib.util.find_spec("pynvml") is None:
        return None
    import pynvml

    try:
        pynvml.nvmlInit()
    except Exception:  # no driver, no device: NVML raises its own error types
        return None
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        cuda_raw = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        cuda = f"{cuda_raw // 1000}.{(cuda_raw % 1000) // 10}"
        found = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            found.append(
                {
                    "index": index,
                    "name": _text(pynvml.nvmlDeviceGetName(handle)),
                    "uuid": _text(pynvml.nvmlDeviceGetUUID(handle)),
                    "memory_bytes": int(memory.total),
                    "memory_free_bytes": int(memory.free),
                    "compute_capability": f"{major}.{minor}",
                }
            )
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    filtered, entries = _visible_filter()
    if filtered:
        by_key = {str(g["index"]): g for g in found} | {g["uuid"]: g for g in found}
        visible = []
        for entry in entries:
            match = by_key.get(entry) or next(
                (g for g in found if str(g["uuid"]).startswith(entry)), None
            )
            if match is None:
                break
            visible.append(match)
        found = [{**g, "index": i} for i, g in enumerate(visible)]  # torch's numbering
    return found, cuda, _text(driver)


def _gpus_from_torch() -> tuple[list[dict[str, Any]], str | None, str | None] | None:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    if not torch.cuda.is_available():
        return [], None, None
    found = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        found.append(
            {
                "index": index,
                "name": props.name,
                "uuid": str(getattr(props, "uuid", "")),
                "memory_bytes": int(props.total_memory),
                "memory_free_bytes": None,
                "compute_capability": f"{props.major}.{props.minor}",
            }
        )
    return found, torch.version.cuda, None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def detect_gpus() -> dict[str, Any]:
    """`{"gpus": [...], "cuda_version": ..., "driver_version": ..., "gpu_source": ...}`."""
    for source, probe in (("nvml", _gpus_from_nvml), ("torch", _gpus_from_torch)):
        result = probe()
        if result is not None and (result[0] or source == "torch"):
            gpus, cuda, driver = result
            return {
                "gpus": gpus,
                "cuda_version": cuda if gpus else None,
                "driver_version": driver,
                "gpu_source": source if gpus else None,
            }
    return {"gpus": [], "cuda_version": None, "driver_version": None, "gpu_source": None}


def detect_hardware(work_dir: Path) -> dict[str, Any]:
    """The capabilities a provider registers with: CPU, RAM, free disk of `work_dir`, GPUs."""
    work_dir = Path(work_dir)
    probe = work_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # the work dir may not be created yet
    disk = shutil.disk_usage(probe)
    return {
        "cpu_cores": cpu_cores(),
        "cpu_model": cpu_model(),
        "memory_bytes": memory_bytes(),
        "disk_free_bytes": int(disk.free),
        "disk_path": str(work_dir.resolve()),
        **detect_gpus(),
        "platform": {
            "system": platform.system(),
            "machine": platform.machine(),
            "python": platform.python_version(),
        },
        "packages": {
            name: _package_version(name) for name in ("torch", "ultralytics", "onnxruntime")
        },
    }
