"""`driftline kcat`: the system's kcat binary on the librdkafka that confluent-kafka bundles."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import confluent_kafka

from launch.kcat import SONAME, bundled_librdkafka, kcat_command, library_dir


def test_the_loader_finds_the_bundled_library_first(tmp_path: Path) -> None:
    argv, env = kcat_command(["-V"], {"LD_LIBRARY_PATH": "/opt/lib", "X": "1"}, tmp_path)
    first, rest = env["LD_LIBRARY_PATH"].split(":", 1)
    assert (Path(first) / SONAME).resolve() == bundled_librdkafka()
    assert rest == "/opt/lib" and env["X"] == "1"
    assert Path(argv[0]).name in {"kcat", "kafkacat"} and argv[1:] == ["-V"]
    assert library_dir(tmp_path) == Path(first)  # a second run reuses the link


def test_kcat_runs_on_the_bundled_librdkafka() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "launch.cli", "kcat", "-V"], capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    # confluent-kafka's version() is the bundled librdkafka's, e.g. ('2.16.0', ...)
    assert f"librdkafka {confluent_kafka.libversion()[0]} " in done.stdout.decode()


def test_a_missing_kcat_says_what_to_install(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "launch.cli", "kcat", "-V"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": str(tmp_path)},
    )
    assert done.returncode == 2
    assert "kcat is not installed: apt-get install kcat" in done.stderr


def test_an_unwritable_cache_falls_back_to_the_temporary_directory(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")  # a file where the cache directory should be
    done = subprocess.run(
        [sys.executable, "-m", "launch.cli", "kcat", "-V"],
        capture_output=True,
        timeout=30,
        env={**os.environ, "XDG_CACHE_HOME": str(blocked), "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / f"driftline-{os.getuid()}" / "driftline").is_dir()
