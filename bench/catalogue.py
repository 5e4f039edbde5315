"""`make bench-catalogue`: the catalogue reads (models list, metric names, features, versions,
slices, categories) on a store with a long history, from the catalogue kept on write against
the scan of the metrics history they replaced, in the same run, on chDB.

The store gets ``--models`` models x ``--features`` features x ``--windows`` 60 s windows of
6 metrics per feature (the defaults, 50 x 50 x 300: 4.5 million rows, about a minute to
write), written through ``Store.write_window`` as the worker writes them. Each read is timed
``--repeat`` times (median). The scans are the SQL the reads ran before the catalogue
(tests/driftline/store/test_base.py keeps them as the oracle the catalogue must agree with).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench.detectors import median_s
from driftline.store import MetricPoint, Store
from driftline.store.embedded import EmbeddedBackend

START = 1_700_000_000
SCANS = {
    "models": "SELECT model, toUInt32(min(window_start)), toUInt32(max(window_start)), "
    "sumIf(value, stage = ''), sum(value), uniqExact(window_start), groupUniqArray(stage) "
    "FROM metrics FINAL WHERE metric = 'traffic.count' AND segment = '' "
    "GROUP BY model ORDER BY model",
    "metric_names": "SELECT DISTINCT metric FROM metrics FINAL WHERE model = 'm0' ORDER BY metric",
    "features": "SELECT feature, max(metric = 'input.category_freq') FROM metrics FINAL "
    "WHERE model = 'm0' AND stage = '' AND feature != '' AND metric LIKE 'input.%' "
    "GROUP BY feature ORDER BY feature",
    "versions": "SELECT DISTINCT version FROM metrics FINAL WHERE model = 'm0' "
    "AND metric = 'traffic.count' ORDER BY version",
}


def window(model: str, start: int, features: int) -> list[MetricPoint]:
    points = [MetricPoint(model, start, 60, "traffic.count", 1000.0, version="1")]
    for f in range(features):
        for metric in ("mean", "std", "p05", "p50", "p95", "missing_rate"):
            points.append(MetricPoint(model, start, 60, f"input.{metric}", 1.0, feature=f"x{f}"))
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--windows", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(EmbeddedBackend(Path(tmp) / "chdb"))
        store.init_schema()
        began = time.perf_counter()
        for w in range(args.windows):
            points = [
                p
                for m in range(args.models)
                for p in window(f"m{m}", START + 60 * w, args.features)
            ]
            store.write_window(points, [])
        rows = store.backend.execute("SELECT count() FROM metrics")[0][0]
        print(f"{rows:,} metric rows written in {time.perf_counter() - began:.0f} s")
        reads: dict[str, Callable[[], object]] = {
            "models": store.models,
            "metric_names": lambda: store.metric_names("m0"),
            "features": lambda: store.model_features("m0"),
            "versions": lambda: store.model_versions("m0"),
        }
        print(f"{'read':14} {'catalogue ms':>13} {'history scan ms':>16} {'ratio':>7}")
        for name, read in reads.items():
            ours = 1e3 * median_s(read, args.repeat)
            scan = 1e3 * median_s(partial(store.backend.execute, SCANS[name]), args.repeat)
            print(f"{name:14} {ours:13.1f} {scan:16.1f} {ours / scan:7.3f}", flush=True)
        store.close()


if __name__ == "__main__":
    main()
