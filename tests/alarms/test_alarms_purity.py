"""``alarms/`` is pure computation, like ``detectors/``: it imports no I/O of any kind."""

import ast
from pathlib import Path

import pytest

FORBIDDEN = {
    "faust", "kafka", "aiokafka", "fastapi", "clickhouse_driver", "chdb", "torch",
    "urllib", "http", "socket", "httpx", "threading", "asyncio", "orjson", "driftline",
    "streams", "api",
}  # fmt: skip
PACKAGE = Path(__file__).resolve().parents[2] / "alarms"


def imported(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_scanner_sees_nested_imports() -> None:
    assert imported("def f():\n    from urllib.request import urlopen\n") == {"urllib"}


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_alarms_module_is_pure(path: Path) -> None:
    assert imported(path.read_text()) & FORBIDDEN == set()
