"""``detectors/`` is pure computation: no streaming, storage, web or deep-learning imports,
and none of the project's other packages (where its I/O is: the store, the broker, the
worker, the API): the others build on ``detectors``, never the other way round."""

import ast
from pathlib import Path

import pytest

FORBIDDEN = {"faust", "kafka", "aiokafka", "fastapi", "clickhouse_driver", "chdb", "torch"}
# found from this file, not by import: tests/detectors could shadow it as a namespace package
ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "detectors"
PROJECT = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"detectors", "tests"}


def forbidden_imports(source: str) -> set[str]:
    """Top-level names of forbidden modules that ``source`` imports."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & (FORBIDDEN | PROJECT)
    return found


def test_scanner_catches_every_import_form() -> None:
    source = "import os\nimport torch.nn as nn\nfrom kafka import Producer\n"
    source += "def f():\n    import fastapi\n    from chdb.session import Session\n"
    assert forbidden_imports(source) == {"torch", "kafka", "fastapi", "chdb"}
    assert forbidden_imports("from .faust import x\nimport numpy\n") == set()
    source = (
        "from driftline.store import Store\nimport streams.windowing\nimport detectors.profile\n"
    )
    assert forbidden_imports(source) == {"driftline", "streams"}


def test_the_project_packages_are_found() -> None:
    assert {"driftline", "streams", "api", "retrainer"} <= PROJECT


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_detectors_module_is_pure(path: Path) -> None:
    assert forbidden_imports(path.read_text()) == set()


def test_the_scan_sees_the_drift_package() -> None:
    scanned = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    assert {"reference.py", "streaming.py", "drift/ks.py", "drift/decision.py"} <= scanned
