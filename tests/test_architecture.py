"""The architecture, checked by machine: the import contract of pyproject.toml
(`[tool.importlinter]`: layers, independence, no cycle between packages or files, lazy
imports included) and "no router reads `app.state`" (routes reach the node's runtime
through typed dependencies, `node.runtime`)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("lint-imports is not installed: pip install -e '.[dev]'")
    return subprocess.run(
        [exe, "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_contract_is_kept() -> None:
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_import_contract_refuses_a_lazy_wrong_way_import(tmp_path: Path) -> None:
    """The contract sees an import made inside a function: jobs reaching up into the
    escrow domain (which settles jobs) is a cycle, and `lint-imports` fails on it."""
    for package in ("node", "marketplace", "worker", "dcm"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    service = tmp_path / "node" / "jobs" / "service.py"
    service.write_text(
        service.read_text() + "\n\ndef _sneak():\n    from node.escrow import service\n"
    )
    done = _lint_imports(tmp_path)
    assert done.returncode != 0
    assert ".jobs -> .escrow" in done.stdout and "BROKEN" in done.stdout


def _routers() -> list[Path]:
    found = [*REPO.glob("node/*/router.py"), *REPO.glob("node/*/router_*.py")]
    found.append(REPO / "node" / "routers.py")
    return sorted(found)


def _reads_app_state(tree: ast.AST) -> list[int]:
    """Lines where an `<x>.app.state` or `<x>.state.<runtime part>` of the app is read."""
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "state"
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "app"
        ):
            lines.append(node.lineno)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr":
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Attribute) and first.attr == "state":
                lines.append(node.lineno)
    return lines


def test_routers_exist_to_check() -> None:
    names = {p.relative_to(REPO).as_posix() for p in _routers()}
    assert {"node/jobs/router_v1.py", "node/providers/router.py", "node/routers.py"} <= names


@pytest.mark.parametrize("path", _routers(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_router_reads_app_state(path: Path) -> None:
    lines = _reads_app_state(ast.parse(path.read_text(), str(path)))
    assert lines == [], f"{path.name} reads app.state at lines {lines}: use a typed dependency"


def test_the_check_sees_a_router_reading_app_state() -> None:
    bad = "def get(request):\n    return request.app.state.chain\n"
    also_bad = "def get(request):\n    return getattr(request.app.state, 'chain', None)\n"
    assert _reads_app_state(ast.parse(bad)) == [2]
    assert _reads_app_state(ast.parse(also_bad)) == [2, 2]


def _forbidden_to_lower_layers() -> list[str]:
    """The module patterns that models, repositories and services may not import."""
    import tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    for contract in contracts["contracts"]:
        if contract["name"].startswith("node layers by kind"):
            return list(contract["forbidden_modules"])
    raise AssertionError("the 'node layers by kind' contract is missing from pyproject.toml")


def _matches(module: str, pattern: str) -> bool:
    """import-linter's wildcard: `*` stands for exactly one module name."""
    parts, wanted = module.split("."), pattern.split(".")
    if len(parts) != len(wanted):
        return False
    return all(w in ("*", p) for p, w in zip(parts, wanted, strict=True))


@pytest.mark.parametrize("path", _routers(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_router_is_out_of_reach_of_services(path: Path) -> None:
    """import-linter's wildcards match whole names only (`node.*.router` does not cover
    `router_v1`), so each `router_<x>` module is listed by name: a new one left off the list
    would let a service import a router unnoticed. This names the one left off."""
    module = ".".join(path.relative_to(REPO).with_suffix("").parts)
    patterns = _forbidden_to_lower_layers()
    assert any(_matches(module, p) for p in patterns), (
        f"{module} is a router but not in the forbidden_modules of the 'node layers by kind'"
        " contract in pyproject.toml: add it there"
    )


def test_the_router_list_check_sees_a_missing_router() -> None:
    assert _matches("node.jobs.router", "node.*.router")
    assert not _matches("node.jobs.router_v2", "node.*.router")
    assert not _matches("node.jobs.router_v2", "node.jobs.router_v1")
