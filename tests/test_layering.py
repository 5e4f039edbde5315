"""The packages stand in layers: a lower one never imports a higher one."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported(source: str) -> set[str]:
    """The top-level packages ``source`` imports, nested and TYPE_CHECKING imports included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_foundation_imports_no_upper_layer() -> None:
    upper = {"api", "streams", "retrainer", "launch"}
    modules = sorted((ROOT / "driftline").rglob("*.py"))
    assert modules, "no modules found under driftline/"
    upward = {
        str(path.relative_to(ROOT)): sorted(imported(path.read_text()) & upper) for path in modules
    }
    assert {path: names for path, names in upward.items() if names} == {}
