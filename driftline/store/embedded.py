"""Embedded backend: the ClickHouse engine in-process (chDB), data in a local directory.

One process owns a data directory (a second process fails to open it); threads share the
session under a lock.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from chdb import session as chdb_session
from clickhouse_driver.util.escape import escape_params

from driftline.store.errors import CLIENT_DATA_ERRORS, DATA_ERROR_CODES


class StoreLockedError(RuntimeError):
    """The embedded data directory is open in another process."""


class EmbeddedBackend:
    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._session = chdb_session.Session(str(path))
        except Exception as exc:  # chDB raises a bare RuntimeError-like error here
            raise StoreLockedError(
                f"cannot open the embedded store at {path}: {exc}. One process owns an "
                "embedded data directory: run the worker and the API together with "
                "`driftline up`, or point them at a ClickHouse server (DRIFTLINE_STORE=server)."
            ) from exc
        self._lock = threading.Lock()

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        # The same client-side substitution clickhouse-driver does, so one SQL text serves both.
        text = sql % escape_params(params, None) if params else sql
        with self._lock:
            result = self._session.query(text, "JSONCompact")
        raw = result.bytes() if result is not None else b""
        if not raw:
            return []
        return [tuple(row) for row in orjson.loads(raw)["data"]]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        # One JSON array per row: serialised by orjson, parsed by ClickHouse, no per-value
        # escaping in Python (50x faster than formatting VALUES for wide windows).
        body = b"\n".join(orjson.dumps(row) for row in rows).decode()
        with self._lock:
            self._session.query(
                f"INSERT INTO {table} ({', '.join(columns)}) FORMAT JSONCompactEachRow\n{body}"
            )

    def insert_json_columns(
        self, table: str, columns: Sequence[str], arrays: Sequence[bytes]
    ) -> None:
        # Parsed by ClickHouse as it is; objects are kept as their text (chDB releases the GIL
        # while it parses, sorts and writes)
        body = b"[" + b",".join(arrays) + b"]"
        with self._lock:
            self._session.query(
                f"INSERT INTO {table} ({', '.join(columns)}) "
                "SETTINGS input_format_json_read_objects_as_strings = 1 "
                f"FORMAT JSONCompactColumns {body.decode()}"
            )

    def rejects_data(self, exc: BaseException) -> bool:
        if isinstance(exc, CLIENT_DATA_ERRORS):
            return True
        code = re.match(r"Code: (\d+)\.", str(exc))  # chDB's errors carry the server's code
        return code is not None and int(code.group(1)) in DATA_ERROR_CODES

    def close(self) -> None:
        with self._lock:
            self._session.close()
