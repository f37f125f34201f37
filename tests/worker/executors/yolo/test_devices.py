"""Device, batch and worker choice, from faked torch and core-count facts (no GPU needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from worker.executors.yolo.devices import (
    choose_batch,
    choose_device,
    choose_workers,
    device_name,
    visible_cuda_devices,
)


def _torch(gpus: int, *, cuda: bool = True, names: tuple[str, ...] = ()) -> SimpleNamespace:
    """A stand-in for the torch module: only the CUDA facts the choices read."""
    return SimpleNamespace(
        cuda=SimpleNamespace(
            is_available=lambda: cuda,
            device_count=lambda: gpus,
            get_device_name=lambda index: names[index],
        )
    )


def test_every_visible_gpu_is_used():
    assert choose_device(torch=_torch(4)) == "0,1,2,3"
    assert choose_device(torch=_torch(1)) == "0"


def test_cpu_without_cuda():
    assert visible_cuda_devices(_torch(2, cuda=False)) == 0
    assert choose_device(torch=_torch(2, cuda=False)) == "cpu"
    assert choose_device(torch=_torch(0)) == "cpu"


def test_override_wins_without_asking_torch():
    assert choose_device("1", torch=None) == "1"


@pytest.mark.parametrize(
    ("requested", "images", "device", "batch"),
    [
        (None, 1000, "cpu", 16),  # 16 on the CPU
        (None, 1000, "0", 16),  # 16 per GPU
        (None, 1000, "0,1,2,3", 64),
        (None, 10, "cpu", 10),  # never above the training set
        (None, 10, "0,1,2,3", 8),  # and a multiple of the GPU count
        (None, 3, "0,1,2,3", 4),  # at least one image per GPU
        (7, 1000, "0,1", 6),
        (7, 1000, "cpu", 7),
        (64, 5, "0", 5),
        (None, 0, "cpu", 1),
    ],
)
def test_batch_choice(requested, images, device, batch):
    assert choose_batch(requested, images, device) == batch


@pytest.mark.parametrize(("cores", "workers"), [(1, 0), (2, 0), (3, 2), (8, 7), (64, 8)])
def test_no_dataloader_workers_on_two_cores_or_fewer(cores, workers):
    assert choose_workers(cores) == workers


def test_device_names_come_from_cuda():
    torch = _torch(2, names=("NVIDIA H200", "NVIDIA H100"))
    assert device_name("0,1", torch=torch) == "NVIDIA H200, NVIDIA H100"
    assert device_name("cpu", torch=torch) == "cpu"


def test_device_name_falls_back_to_the_device_string():
    assert device_name("0", torch=_torch(0, names=())) == "0"
