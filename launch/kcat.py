"""``driftline kcat``: the system's kcat, linked at run time against a current librdkafka.

Debian 12 ships kcat 1.7.1 on librdkafka 2.0.2, which cannot read the ApiVersions v3 reply
of the embedded broker (Tansu 0.6.0 writes every tagged field, defaults included; librdkafka
2.0.2 fails with "Read underflow" on the valid reply). librdkafka keeps its ABI stable under
the ``librdkafka.so.1`` soname, so the same kcat binary runs unchanged on the librdkafka that
the ``confluent-kafka`` wheel bundles (2.16 here): this module points the dynamic loader at it
and replaces itself with kcat. Nothing is downloaded or built.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

SONAME = "librdkafka.so.1"


class KcatError(RuntimeError):
    """kcat or a current librdkafka is not available; the message says what to install."""


def find_kcat() -> str:
    for name in ("kcat", "kafkacat"):
        found = shutil.which(name)
        if found:
            return found
    raise KcatError(
        "kcat is not installed: apt-get install kcat (Debian/Ubuntu) or brew install kcat"
    )


def bundled_librdkafka() -> Path:
    """The librdkafka shared library inside the installed confluent-kafka wheel."""
    try:
        import confluent_kafka
    except ImportError as exc:
        raise KcatError("confluent-kafka is not installed: pip install confluent-kafka") from exc
    package = Path(confluent_kafka.__file__).resolve().parent
    # auditwheel puts the bundled libraries beside the package as <name>.libs/librdkafka-<hash>
    found = sorted((package.parent / "confluent_kafka.libs").glob("librdkafka*.so*"))
    found = found or sorted(package.glob("**/librdkafka*.so*"))
    if not found:
        raise KcatError(f"no bundled librdkafka found under {package.parent}")
    return found[0]


def library_dir(cache_dir: Path | None = None) -> Path:
    """A directory holding ``librdkafka.so.1`` -> the bundled library, for LD_LIBRARY_PATH:
    under ``cache_dir`` (default: the user's cache directory, else the temporary one)."""
    if cache_dir is not None:
        return _link_library(cache_dir)
    try:
        return _link_library(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"))
    except OSError:  # a read-only or missing home: a per-user temporary directory will do
        return _link_library(Path(tempfile.gettempdir()) / f"driftline-{os.getuid()}")


def _link_library(base: Path) -> Path:
    library = bundled_librdkafka()
    directory = base / "driftline" / f"rdkafka-{library.stem}"
    link = directory / SONAME
    if not (link.is_symlink() and link.resolve() == library):
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f".{SONAME}.{os.getpid()}"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(library)
        temporary.replace(link)  # atomic: concurrent runs never see a missing library
    return directory


def kcat_command(
    args: Sequence[str], env: Mapping[str, str], cache_dir: Path | None = None
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that run kcat on the bundled librdkafka."""
    kcat = find_kcat()
    if not sys.platform.startswith("linux"):
        return [kcat, *args], dict(env)  # elsewhere kcat comes with a current librdkafka
    paths = [str(library_dir(cache_dir)), *filter(None, [env.get("LD_LIBRARY_PATH")])]
    return [kcat, *args], {**env, "LD_LIBRARY_PATH": os.pathsep.join(paths)}


def exec_kcat(args: Sequence[str]) -> None:
    argv, env = kcat_command(args, os.environ)
    os.execve(argv[0], argv, env)
