"""The README's "node alone, with curl" section, run as written (bash, curl, jq) against a
fresh `dcm serve`: only the base URL and the path of `dcm` are the test's own. The seed
000 upload is job 2 there (the seed 001 job is 1), and the downloaded dataset is the zip
that was uploaded, not an error body. The requester then funds it from its own wallet,
a provider trains it (the real daemon and Ultralytics executor), and `get-model` serves
the trained model's zip.

The node is the one the section starts (`make run`: the embedded defaults, SQLite), so this
test is not repeated in the PostgreSQL pass; the API it walks runs there in its own tests."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.fixtures.engines import require_engine
from tests.fixtures.served import REPO, Served

SECTION = "## The node alone, with curl"


def walkthrough() -> str:
    """The bash blocks of the README section, without `make run` (the test serves)."""
    text = (REPO / "README.md").read_text()
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 4, "the section has its setup, seed 001 and two seed 000 blocks"
    lines = [line for line in "".join(blocks).splitlines() if not line.startswith("make run")]
    return "\n".join(lines) + "\n"


def test_readme_curl_walkthrough_works_as_written_on_a_fresh_node(tmp_path: Path):
    for tool in ("curl", "jq", "bash"):
        require_engine(shutil.which(tool) is not None, f"{tool} is not installed")
    require_engine(
        importlib.util.find_spec("ultralytics") is not None,
        "ultralytics not installed (pip install -e '.[train]'): the walk-through trains",
    )
    node = Served(tmp_path / "data")
    try:
        script = walkthrough()
        assert "http://localhost:8000" in script and ".venv/bin/dcm" in script
        script = script.replace("http://localhost:8000", node.url).replace(
            ".venv/bin/dcm", f"{sys.executable} -m dcm.cli"
        )
        work = tmp_path / "cwd"
        work.mkdir()
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script + 'echo "JOB=$JOB"\n'],
            cwd=work,
            env=node.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    finally:
        node.stop()
    assert done.stdout.rstrip().endswith("JOB=2"), done.stdout[-2000:]
    assert '"job_id":2' in done.stdout.replace(" ", ""), done.stdout[-2000:]
    uploaded = zipfile.ZipFile(work / "dataset.zip")
    downloaded = zipfile.ZipFile(work / "dataset_2.zip")
    names = sorted(n for n in downloaded.namelist() if not n.endswith("/"))
    assert names == sorted(uploaded.namelist())
    assert len(names) == 3 * (100 + 30)
    for name in names[:5]:
        assert downloaded.read(name) == uploaded.read(name)
    with zipfile.ZipFile(work / "model_2.zip") as model:
        trained = set(model.namelist())
        metrics = json.loads(model.read("metrics.json"))
    assert {"metrics.json", "train.log", "results.csv"} <= trained, sorted(trained)
    assert any(n.startswith("weights/") and n.endswith(".pt") for n in trained), sorted(trained)
    assert any(n.endswith(".onnx") for n in trained), sorted(trained)  # the exportFormat
    assert metrics, "the model's metrics are in the zip"
    listed = [line for line in done.stdout.splitlines() if '"model_cid"' in line]
    assert listed and '"contributor_address"' in done.stdout, done.stdout[-2000:]
