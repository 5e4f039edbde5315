"""``driftline replay``: send a CSV, JSONL or Parquet file as prediction events."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from driftline_sdk import Monitor

RESERVED = {"latency_ms", "version", "segment", "stage", "model"}


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        with path.open("rb") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        raise ValueError(f"{path}:{number}: not valid JSON: {exc}") from None
        return
    import pandas as pd

    if suffix == ".csv":
        frame = pd.read_csv(path)
    elif suffix in {".parquet", ".pq"}:
        frame = pd.read_parquet(path)
    else:
        raise ValueError(f"{path}: unknown file type {suffix!r}; use .csv, .jsonl or .parquet")
    for record in frame.to_dict(orient="records"):
        yield {str(k): v for k, v in record.items()}


def _plain(value: Any) -> Any:
    """NaN to None, NumPy and pandas scalars to Python values."""
    if value is None:
        return None
    if hasattr(value, "isoformat"):  # pandas Timestamp / datetime
        return value.isoformat() if value.tzinfo else value.isoformat() + "Z"
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def row_to_event(
    row: dict[str, Any],
    *,
    model: str,
    prediction_column: str,
    ts_column: str,
    id_column: str,
    version: str | None,
) -> dict[str, Any]:
    """A file row as SDK arguments: a full event (has ``features``) or a flat row."""
    if "features" in row:
        event = dict(row)
        event.pop("model", None)
        event.pop("label", None)
    else:
        if prediction_column not in row:
            raise ValueError(
                f"row has no {prediction_column!r} column; name it with --prediction-column"
            )
        skip = {prediction_column, ts_column, id_column, *RESERVED}
        event = {
            "features": {k: _plain(v) for k, v in row.items() if k not in skip},
            "prediction": _plain(row[prediction_column]),
        }
        for column, key in ((ts_column, "ts"), (id_column, "id")):
            if _plain(row.get(column)) is not None:
                event[key] = _plain(row[column])
        if _plain(row.get("latency_ms")) is not None:
            event["latency_ms"] = float(row["latency_ms"])
        if row.get("version") is not None:
            event["version"] = str(_plain(row["version"]))
    if "id" in event and event["id"] is not None:
        event["id"] = str(event["id"])
    if version is not None:
        event["version"] = version
    return event


def replay_file(
    path: Path,
    *,
    model: str,
    bootstrap: str,
    prediction_column: str = "prediction",
    ts_column: str = "ts",
    id_column: str = "id",
    version: str | None = None,
) -> int:
    """Send every row; returns how many events the broker acknowledged."""
    sent = 0
    with Monitor(bootstrap, max_buffered=1_000_000) as monitor:
        for number, row in enumerate(read_rows(path), 1):
            event = row_to_event(
                row,
                model=model,
                prediction_column=prediction_column,
                ts_column=ts_column,
                id_column=id_column,
                version=version,
            )
            try:
                monitor.log_prediction(model=model, **event)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}: row {number}: {exc}") from None
            sent += 1
        monitor.flush()
        if monitor.stats.failed or monitor.stats.dropped:
            raise RuntimeError(
                f"{monitor.stats.failed} events failed and {monitor.stats.dropped} were dropped"
            )
    return sent
