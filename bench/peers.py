"""A peer's own virtualenv for a benchmark (``.bench-venvs/<name>``): the peers pin what ours
do not, so they are installed for the benchmark only, never as runtime dependencies."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".bench-venvs"


def peer_python(name: str, requirements: Sequence[str]) -> Path:
    """The interpreter of the peer's virtualenv, created and installed on first use (and
    again when ``requirements`` change)."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = " ".join(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"creating {venv.relative_to(ROOT)} ({', '.join(requirements)}): minutes, once")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         *requirements],
        check=True,
    )  # fmt: skip
    stamp.write_text(wanted)
    return python
