"""The import arrows of ../shared/STYLE.md stay true.

- ``core`` imports no service (nor the runner).
- A service (ingestor, classifier, notifier, api) imports ``core`` and never another service.
- Only ``runner`` (the composition root) imports every service; nothing imports ``runner``.
- Pure decision modules import no I/O library.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {"ingestor", "classifier", "notifier", "api"}
PACKAGES = {"core", "runner", *SERVICES}
IO_LIBS = {"redis", "httpx", "fastapi", "starlette", "uvicorn", "aiosmtplib", "socket", "asyncio"}
PURE_MODULES = [
    "classifier/engine.py",
    "classifier/verdict.py",
    "classifier/normalise.py",
    "ingestor/seeds.py",
    "core/models.py",
    "core/guard.py",
    "core/payloads.py",
]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_import_arrows(package: str) -> None:
    allowed = {"core"} | ({package} if package != "runner" else PACKAGES)
    if package == "core":
        allowed = {"core"}
    bad = []
    for path in _modules(package):
        ours = _imports(path) & PACKAGES
        for name in sorted(ours - allowed):
            bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_runner() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for pkg in PACKAGES - {"runner"}
        for p in _modules(pkg)
        if "runner" in _imports(p)
    ]
    assert not offenders


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_do_no_io(module: str) -> None:
    path = ROOT / module
    assert path.exists(), module
    assert not (_imports(path) & IO_LIBS), f"{module} imports {_imports(path) & IO_LIBS}"


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("from classifier.engine import Classifier\nimport core.bus\n")
    assert _imports(bad) & PACKAGES == {"classifier", "core"}
