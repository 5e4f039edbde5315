"""A child process the project starts for itself (embedded broker, throwaway ClickHouse).

Such a child dies with the process that started it, even one killed with ``SIGKILL``: on Linux
it is started with ``PR_SET_PDEATHSIG``, so the kernel signals it when its parent goes. The
kernel ties that signal to the *thread* that forked, so start children from the main thread
(or from a thread that outlives them).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(death_signal: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child receive ``death_signal`` when this process dies.

    None where the platform has no such mechanism (not Linux).
    """
    if not sys.platform.startswith("linux"):
        return None
    # resolved here, before the fork: the child only makes the call
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def set_death_signal() -> None:
        if prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before the prctl: no signal will come
            os._exit(1)

    return set_death_signal


class ManagedProcess:
    """Start/stop plus context management; subclasses start their child with ``_spawn``."""

    _process: subprocess.Popen[bytes] | None = None
    #: what the child gets when its parent dies; both children here keep nothing worth a
    #: graceful stop (memory-only broker, throwaway server), and SIGKILL frees the port at once
    death_signal: int = signal.SIGKILL

    def start(self) -> Self:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def _spawn(self, args: Sequence[str], **options: Any) -> subprocess.Popen[bytes]:
        self._process = subprocess.Popen(
            args, preexec_fn=die_with_parent(self.death_signal), **options
        )
        return self._process

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate, then kill if it has not exited within ``timeout_s``."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first); [] if none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat.rpartition(")")[2].split()


def is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, dead but not yet reaped, is not)."""
    stat = _stat(pid)
    return bool(stat) and stat[0] not in ("Z", "X")


def parent_pid(pid: int) -> int | None:
    stat = _stat(pid)
    return int(stat[1]) if stat else None


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): with the pid, it names one process."""
    stat = _stat(pid)
    return int(stat[19]) if stat else None


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port``: connections a killed server left in
    TIME_WAIT do not count, as servers (Tansu, uvicorn) bind with SO_REUSEADDR."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_port_free(port: int, timeout_s: float = 5.0, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout_s
    while not port_free(port, host):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def port_listener(port: int) -> int | None:
    """The pid of a process listening on TCP ``port``, where /proc lets this user see it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rpartition(":")[2], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except OSError:  # another user's process, or it exited meanwhile
            continue
    return None


def describe_port_user(port: int) -> str:
    """' by pid N (name)' for the process listening on ``port``, or '' when unknown."""
    pid = port_listener(port)
    return "" if pid is None else f" by pid {pid} ({process_name(pid)})"
