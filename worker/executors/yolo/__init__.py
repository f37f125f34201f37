"""The YOLO training executor (Ultralytics), offline by construction.

A package by concern, each part small enough to test alone:
- `offline`: Ultralytics imported with auto-install and online checks off, its settings
  and fonts in the provider's own directory; nothing is ever downloaded;
- `dataset`: the dataset view Ultralytics reads (symlinks and a `data.yaml`), built from the
  layout stored with the job (`marketplace.datasets.layout`);
- `callbacks`: per-epoch events and cancellation through files (DDP-safe), metrics names,
  `train.log` and the reporter;
- `devices`: device, batch size and dataloader workers;
- `executor`: `YoloExecutor.run`, the steps from parameters to the output directory.

The requested model name maps to an Ultralytics `.yaml` definition
(`marketplace.training.resolve_model`); when the provider keeps `<name>.pt` in its weights
directory (`DCM_WEIGHTS_DIR`), training starts from those weights. Importing this package
does not import torch or Ultralytics; a run does.
"""

from __future__ import annotations

from worker.executors.yolo.callbacks import TrainingHook, flatten_metrics
from worker.executors.yolo.dataset import PreparedDataset, prepare_dataset
from worker.executors.yolo.devices import (
    choose_batch,
    choose_device,
    choose_workers,
    visible_cuda_devices,
)
from worker.executors.yolo.executor import YoloExecutor
from worker.executors.yolo.offline import (
    default_config_dir,
    import_ultralytics,
    offline_environment,
)

__all__ = [
    "PreparedDataset",
    "TrainingHook",
    "YoloExecutor",
    "choose_batch",
    "choose_device",
    "choose_workers",
    "default_config_dir",
    "flatten_metrics",
    "import_ultralytics",
    "offline_environment",
    "prepare_dataset",
    "visible_cuda_devices",
]
