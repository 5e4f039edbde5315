"""ClickHouse server backend over the native protocol (clickhouse-driver)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import orjson
from clickhouse_driver import Client, errors

from driftline.store.errors import CLIENT_DATA_ERRORS, DATA_ERROR_CODES


class ServerBackend:
    def __init__(self, url: str) -> None:
        # clickhouse://user:password@host:port/database
        self._client = Client.from_url(url)
        self._lock = threading.Lock()  # a Client is one connection: one query at a time

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._lock:
            rows = self._client.execute(sql, params)
        return [tuple(r) for r in rows] if isinstance(rows, list) else []

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        # Rows go as the second argument: inline VALUES without params hang (PERF-NOTES.md).
        with self._lock:
            self._client.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES", rows)

    def insert_json_columns(
        self, table: str, columns: Sequence[str], arrays: Sequence[bytes]
    ) -> None:
        # ClickHouse 18.16 has no JSON column input format: decode here, objects back to text
        data = [_as_text(orjson.loads(array)) for array in arrays]
        with self._lock:
            self._client.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES", data, columnar=True
            )

    def rejects_data(self, exc: BaseException) -> bool:
        if isinstance(exc, (errors.TypeMismatchError, *CLIENT_DATA_ERRORS)):
            return True
        return isinstance(exc, errors.ServerException) and exc.code in DATA_ERROR_CODES

    def close(self) -> None:
        with self._lock:
            self._client.disconnect()


def _as_text(values: list[Any]) -> list[Any]:
    """A column whose values are JSON objects (or arrays) as their JSON text."""
    if values and isinstance(values[0], dict | list):
        return [orjson.dumps(v).decode() for v in values]
    return values
