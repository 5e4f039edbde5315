"""The training side of ``retrainer/`` is pure: torch and numpy, no streaming, storage or web.

``worker.py`` is the one module that does I/O (Kafka, ClickHouse) around these.
"""

import ast
from pathlib import Path

import pytest

FORBIDDEN = {"faust", "kafka", "aiokafka", "fastapi", "clickhouse_driver", "chdb"}
# found from this file, not by import: tests/retrainer could shadow it as a namespace package
PACKAGE = Path(__file__).resolve().parents[2] / "retrainer"
PURE = ["data.py", "model.py", "train.py", "evaluate.py", "registry.py"]


def imported_roots(source: str) -> set[str]:
    """Top-level names of the absolute imports in ``source``, nested ones included."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_scanner_sees_nested_and_from_imports() -> None:
    source = "import torch\ndef f():\n    from kafka.admin import X\n    import chdb.session\n"
    assert imported_roots(source) & FORBIDDEN == {"kafka", "chdb"}


@pytest.mark.parametrize("name", PURE)
def test_training_modules_do_no_io_imports(name: str) -> None:
    assert imported_roots((PACKAGE / name).read_text()) & FORBIDDEN == set()
