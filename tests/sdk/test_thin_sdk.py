"""The thin SDK distribution (``sdk/``), as a service would install it: built from the repo,
installed into a fresh virtualenv with nothing else, small, free of the platform's heavy
dependencies and generic top-level names, and able to send events to a real broker."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from helpers import consume

from driftline.broker import EmbeddedBroker, ensure_topics
from driftline.events import EventLimits, decode_message
from driftline.topics import PREDICTIONS, topic_partitions

ROOT = Path(__file__).resolve().parents[2]
MAX_MB = 30
HEAVY = ("numpy", "pandas", "torch", "faust", "chdb", "fastapi", "scipy", "river", "pyarrow")

SEND = textwrap.dedent(
    """
    import json, sys
    import driftline_sdk
    from driftline_sdk import Monitor

    bootstrap = sys.argv[1]
    with Monitor(bootstrap, max_batch=20) as monitor:
        ids = [
            monitor.log_prediction(
                "thin-sdk", {"amount": float(i), "country": "fr"}, prediction=i % 2,
                version="v1", segment={"channel": "web"},
            )
            for i in range(50)
        ]
        monitor.log_label("thin-sdk", ids[0], 1)
        try:
            monitor.log_prediction("thin-sdk", {"amount": {"nested": 1}}, prediction=1)
            refused = None
        except ValueError as exc:
            refused = str(exc)
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2].split(","))
    print(json.dumps({"ids": ids, "sent": monitor.stats.sent, "failed": monitor.stats.failed,
                      "refused": refused, "heavy": heavy, "version": driftline_sdk.__version__}))
    """
)

LIST = textwrap.dedent(
    """
    import json
    from importlib import metadata
    out = {}
    for dist in metadata.distributions():
        tops = {str(f).split("/")[0] for f in dist.files or ()}
        out[dist.metadata["Name"]] = sorted(t for t in tops if not t.endswith(".dist-info"))
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def thin_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with nothing but the SDK's wheel and its dependencies. It is made without
    pip (the platform's pip installs into it), so its size is what the SDK costs a service."""
    tmp = tmp_path_factory.mktemp("thin-sdk")
    wheels = tmp / "wheels"
    # built from a copy: a build writes build/ and *.egg-info beside its sources
    source = shutil.copytree(ROOT / "sdk", tmp / "sdk", ignore=shutil.ignore_patterns("*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", str(source), "-w", str(wheels)],
        check=True,
        timeout=120,
    )
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (wheel,) = wheels.glob("driftline_sdk-*.whl")
    subprocess.run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", str(wheel)],
        check=True,
        timeout=300,
    )
    return venv


def run_in(venv: Path, code: str, *args: str) -> str:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=venv,  # not the repo: nothing of the platform can be imported from the cwd
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_it_installs_small_with_only_its_own_dependencies(thin_venv: Path) -> None:
    size_mb = sum(f.stat().st_size for f in thin_venv.rglob("*") if f.is_file()) / 2**20
    assert size_mb < MAX_MB, f"the SDK's virtualenv holds {size_mb:.1f} MB"
    installed = json.loads(run_in(thin_venv, LIST))
    assert sorted(installed) == ["driftline-sdk", "kafka-python", "orjson"]
    # one top-level name of its own, and not a generic one
    assert installed["driftline-sdk"] == ["driftline_sdk"]


def test_it_imports_nothing_heavy_and_sends_events_to_the_broker(
    thin_venv: Path, broker: EmbeddedBroker
) -> None:
    ensure_topics(broker.bootstrap, topic_partitions(predictions=1, labels=1))
    result = json.loads(run_in(thin_venv, SEND, broker.bootstrap, ",".join(HEAVY)))
    assert result["heavy"] == []
    assert result["sent"] == 51 and result["failed"] == 0
    assert result["refused"] == (
        "invalid prediction event: feature 'amount' is a dict; use a number, string, bool or null"
    )
    messages = consume(broker.bootstrap, PREDICTIONS, 50)
    assert {key for key, _ in messages} == {b"thin-sdk"}
    # what it sent is what the platform's worker accepts, event for event
    limits = EventLimits()
    decoded = [decode_message(orjson.dumps(events), limits) for _, events in messages]
    assert all(not d.rejected for d in decoded)
    assert sorted(e["id"] for d in decoded for e in d.events) == sorted(result["ids"])
