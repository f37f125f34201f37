"""Ultralytics, imported and run offline.

Ultralytics reads `YOLO_CONFIG_DIR`, `YOLO_AUTOINSTALL` and `YOLO_OFFLINE` into module
constants when it is first imported, so `offline_environment` sets them just before the
import and restores the caller's values afterwards. While the block runs they are visible
to the whole process (os.environ is process-wide), and the constants Ultralytics captured
at import stay for the life of the process: a provider process should let this executor
be the one that imports Ultralytics. If Ultralytics was imported earlier,
`import_ultralytics` still turns auto-install and online checks off on the imported
modules. Ultralytics' plots want Arial, which it would download; matplotlib's DejaVuSans
stands in for it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_IMPORT_LOCK = threading.Lock()
FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def default_config_dir() -> Path:
    """Where Ultralytics keeps its settings and fonts for this provider (`DCM_YOLO_CONFIG_DIR`,
    else `$XDG_CACHE_HOME/dcm/ultralytics`)."""
    if env := os.environ.get("DCM_YOLO_CONFIG_DIR"):
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "dcm" / "ultralytics"


@contextlib.contextmanager
def offline_environment(config_dir: Path) -> Iterator[None]:
    """Set Ultralytics' offline variables for the duration of the block, then restore them."""
    wanted = {
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "0",
        "YOLO_CONFIG_DIR": str(config_dir),
    }
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def import_ultralytics(config_dir: Path) -> Any:
    """Import Ultralytics offline (call inside `offline_environment`); return the module."""
    with _IMPORT_LOCK:
        import ultralytics
        import ultralytics.utils as uutils
        import ultralytics.utils.checks as uchecks

        # Effective even when someone imported Ultralytics before us with other settings.
        uutils.AUTOINSTALL = False
        uchecks.AUTOINSTALL = False
        uutils.ONLINE = False
        uchecks.ONLINE = False
        uutils.SETTINGS.update(sync=False)
        seed_fonts(Path(uutils.USER_CONFIG_DIR))
        return ultralytics


def seed_fonts(user_config_dir: Path, source: Path | None = None) -> None:
    """Give Ultralytics the fonts it would download for its plots: matplotlib's DejaVuSans
    (or `source`) copied under the names it looks for; existing files are kept."""
    if source is None:
        import matplotlib

        source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    user_config_dir.mkdir(parents=True, exist_ok=True)
    for name in FONT_NAMES:
        target = user_config_dir / name
        if not target.exists() and source.exists():
            shutil.copyfile(source, target)


# Ultralytics' TensorFlow exports (saved_model, pb, edgetpu) look for onnx2tf's int8
# calibration sample in the current directory and download it from GitHub when it is not
# there, whether or not the export quantizes. It is only read for int8 quantization, which a
# provider never asks for; a deterministic stand-in of the same shape keeps the export offline.
TF_CALIBRATION_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
TF_CWD_FORMATS = frozenset({"saved_model", "pb", "edgetpu"})


def seed_tf_calibration(directory: Path) -> Path:
    """Write the stand-in calibration sample into `directory` (kept if present)."""
    import numpy as np

    target = Path(directory) / TF_CALIBRATION_FILE
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        sample = np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)
        np.save(str(target), sample)
    return target
