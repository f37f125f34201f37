"""Which export formats this provider can make: a tiny trial export per format, cached.

`export_formats(config_dir)` answers the formats of `marketplace.exports.FORMATS` that
this installation produced a file for: `pt` always; every other format whose extra names a
package registry (`ExportFormat.extra`) and whose modules import here is tried once, by
exporting an untrained `yolov8n.yaml` at 32 px (one class) in a child process (an exporter
that crashes or hangs costs its format, never the daemon), with Ultralytics offline and
auto-install off, so a missing package is a failed trial, not a pip install. TensorRT is
tried only with a CUDA GPU. TensorFlow's formats, which read a file from the current
directory (`offline.seed_tf_calibration`), export in a child process run there, here and
in the executor (`export_in_child`), so that the provider process never changes directory.

The answer is cached in `<config_dir>/export-formats.json`, keyed by the versions of
Ultralytics, torch and every distribution that provides a format's modules: installing or
upgrading an extra invalidates it, a restart does not. `DCM_EXPORT_FORMATS=onnx,openvino`
replaces the trial (an operator's override; unknown names are dropped).
"""

from __future__ import annotations

import contextlib
import importlib.metadata as metadata
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from marketplace.exports import FORMATS, advertised_formats
from worker.executors.yolo.offline import TF_CWD_FORMATS

log = logging.getLogger(__name__)

CACHE_NAME = "export-formats.json"
TRIAL_TIMEOUT_SECONDS = 600  # all trials of one child process together
PROBE_MODEL = "yolov8n.yaml"
PROBE_IMGSZ = 32


def candidates(*, cuda: bool) -> list[str]:
    """Formats worth a trial here: installable from a registry, modules importable."""
    out = []
    for fmt in FORMATS.values():
        if fmt.name == "pt" or fmt.extra is None or (fmt.needs_gpu and not cuda):
            continue
        if all(_importable(m) for m in fmt.modules):
            out.append(fmt.name)
    return out


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def cache_key(names: list[str]) -> dict[str, str | None]:
    """Versions the trial's answer depends on."""
    dists = {"ultralytics", "torch"}
    owners = metadata.packages_distributions()
    for name in names:
        for module in FORMATS[name].modules:
            dists.update(owners.get(module.split(".")[0], ()))
    key: dict[str, str | None] = {}
    for dist in sorted(dists):
        try:
            key[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            key[dist] = None
    key["candidates"] = ",".join(names)
    return key


def export_formats(config_dir: Path, *, cuda: bool | None = None) -> list[str]:
    """The formats this provider makes, sorted (see the module docstring)."""
    if override := os.environ.get("DCM_EXPORT_FORMATS"):
        names = [n.strip() for n in override.split(",") if n.strip()]
        return sorted(advertised_formats({"export_formats": names}))
    if cuda is None:
        from worker.executors.yolo.devices import visible_cuda_devices

        cuda = visible_cuda_devices() > 0
    names = candidates(cuda=cuda)
    key = cache_key(names)
    cache = Path(config_dir) / CACHE_NAME
    with contextlib.suppress(OSError, ValueError):
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return sorted(cached["formats"])
    started = time.monotonic()
    results = run_trials(names, Path(config_dir))
    made = sorted({"pt", *(n for n, ok in results.items() if ok is True)})
    log.info(
        "export formats: %s (trials of %s in %.1f s)",
        ", ".join(made),
        ", ".join(names) or "none",
        time.monotonic() - started,
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    # Written whole then renamed: providers starting together never read half a file.
    partial = cache.with_name(f"{CACHE_NAME}.{os.getpid()}.tmp")
    partial.write_text(json.dumps({"key": key, "formats": made, "trials": results}, indent=2))
    partial.replace(cache)
    return made


def run_trials(names: list[str], config_dir: Path) -> dict[str, bool | str]:
    """Try each format in a child process; a child that dies or times out fails the format
    it was on, and a new one continues with the rest. Returns format -> True or why not."""
    results: dict[str, bool | str] = {}
    remaining = list(names)
    while remaining:
        with tempfile.TemporaryDirectory(prefix="dcm-export-trial-") as tmp:
            report = Path(tmp) / "results.jsonl"
            try:
                subprocess.run(
                    [sys.executable, "-m", __name__, str(config_dir), tmp, *remaining],
                    timeout=TRIAL_TIMEOUT_SECONDS,
                    env=_child_env(),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    check=False,
                )
                why = "the trial process exited"
            except subprocess.TimeoutExpired:
                why = f"the trial took over {TRIAL_TIMEOUT_SECONDS} s"
            lines = report.read_text().splitlines() if report.exists() else []
            for line in lines:
                row = json.loads(line)
                results[row["format"]] = True if row["ok"] else str(row["error"])[:500]
        done = [n for n in remaining if n in results]
        left = [n for n in remaining if n not in results]
        if left:  # the child died on left[0]
            results[left[0]] = why
            left = left[1:]
        if not done and not left:
            break
        remaining = left
    return results


def _child_env() -> dict[str, str]:
    """The environment of a child process: it imports this package from where we did."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def export_in_child(
    weights: Path, fmt: str, imgsz: int, device: str, config_dir: Path, timeout: float = 3600
) -> Path:
    """Export `weights` to `fmt` in a child process whose current directory holds what the
    exporter reads from there; the exported path (beside `weights`).

    Raises:
        RuntimeError: the export failed (its last output lines), or took over `timeout`.
    """
    with tempfile.TemporaryDirectory(prefix="dcm-export-") as tmp:
        args = [sys.executable, "-m", __name__, "--export", str(config_dir), str(weights)]
        args += [fmt, str(imgsz), device]
        try:
            done = subprocess.run(
                args, cwd=tmp, env=_child_env(), capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"export to {fmt} took over {timeout:.0f} s") from exc
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines or not Path(lines[-1]).exists():
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            raise RuntimeError(f"export to {fmt} failed: " + " | ".join(tail))
        return Path(lines[-1])


def _export_main(config_dir: str, weights: str, fmt: str, imgsz: str, device: str) -> None:
    """In the child of `export_in_child`: export, print the exported path last."""
    from worker.executors.yolo.offline import (
        import_ultralytics,
        offline_environment,
        seed_tf_calibration,
    )

    seed_tf_calibration(Path.cwd())
    with offline_environment(Path(config_dir)):
        import_ultralytics(Path(config_dir))
        from ultralytics import YOLO

        made = YOLO(weights).export(format=fmt, imgsz=int(imgsz), device=device)
    print(Path(str(made)).resolve(), flush=True)


def _trial_main(config_dir: str, workdir: str, names: list[str]) -> None:
    """In the child: export the tiny model to each format, one JSON line per result (the
    child's current directory is its own; it seeds TensorFlow's calibration sample there)."""
    from worker.executors.yolo.offline import (
        import_ultralytics,
        offline_environment,
        seed_tf_calibration,
    )

    out = Path(workdir)
    os.chdir(out)
    if any(n in TF_CWD_FORMATS for n in names):
        seed_tf_calibration(out)
    with offline_environment(Path(config_dir)):
        import_ultralytics(Path(config_dir))
        from ultralytics import YOLO

        weights = out / "trial.pt"
        YOLO(PROBE_MODEL).save(str(weights))
        with (out / "results.jsonl").open("a") as report:
            for name in names:
                row: dict[str, object] = {"format": name, "ok": False, "error": None}
                try:
                    device = "0" if FORMATS[name].needs_gpu else "cpu"
                    made = YOLO(str(weights)).export(format=name, imgsz=PROBE_IMGSZ, device=device)
                    row["ok"] = bool(made) and Path(str(made)).exists()
                    if not row["ok"]:
                        row["error"] = "the export produced no file"
                except BaseException as exc:  # any failure is this format's, reported
                    row["error"] = f"{type(exc).__name__}: {exc}"
                report.write(json.dumps(row) + "\n")
                report.flush()


if __name__ == "__main__":
    if sys.argv[1] == "--export":
        _export_main(*sys.argv[2:7])
    else:
        _trial_main(sys.argv[1], sys.argv[2], sys.argv[3:])
