"""`make bench-peers`: one window's drift tests, Driftline against its peers, on the same frames.

A seeded synthetic reference and current frame of 100,000 rows each, at 50 and at 100
features (four in five numeric: normal, lognormal and two-normal mixtures; the rest
categorical, 3 to 6 levels), with exactly four planted shifts: a numeric mean shift (0.3 sd),
a numeric scale shift (x 1.4) and two categorical proportion shifts (0.2 of the mass moved
from the commonest level to the rarest). A flag on a planted feature is a true flag, any
other a false one. The frames are written once as Parquet (``bench-results/peers/data/``),
and every side reads them in its own process (so none shares another's heap):

    scipy      a plain per-feature loop: ``ks_2samp`` for numeric, ``chi2_contingency`` for
               categorical, flagged at p < 0.05 uncorrected (the project's interpreter)
    driftline  the product's path: the reference built from the frame's columns as an
               uploaded file's is (``api.routes.drift._frame_reference``), the current frame
               folded into a ``WindowProfile`` from its columns (``columns_batch``), then
               ``compare_window`` with the default ``DriftConfig``; flagged = the report's
               drifted features (BH-corrected decision) (the project's interpreter)
    alibi      Alibi Detect's ``TabularDrift`` (KS + chi-square, Bonferroni), numpy backend
    nannyml    NannyML 0.13.1's ``UnivariateDriftCalculator`` (KS, chi2), one chunk = the
               whole current frame; flagged = alerts
    evidently  Evidently 0.7's ``DataDriftPreset``; flagged = its drifted columns

The peers run ``bench/drift_peer_side.py`` in their own virtualenvs (``.bench-venvs/<name>``,
created on first use, ``bench/peers.py``); one that fails to install or run is reported as
unavailable and the others still run. Per side: the whole run (from the frames in memory to
the flags, the reference or fit included), the window alone (the comparison against the
prepared reference: ``compare_window``, the scipy loop, ``predict``, ``calculate``,
``Report.run``), medians of a few repeats, the side's peak RSS, and true / false flags;
ratios are against the scipy loop of the same run. The cheap sides (scipy, driftline) run
``--rounds`` times (3) in alternation, their timings pooled, so that a burst of load on this
shared machine does not fall on one of them only. ``--quick``: 20,000 rows, 50 features.
Writes only under ``bench-results/peers/``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench import peers

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench-results" / "peers"
SIDE = ROOT / "bench" / "drift_peer_side.py"
TOOLS = ["scipy", "driftline", "alibi", "nannyml", "evidently"]
# what each peer's virtualenv pins (pyarrow: to read the shared Parquet frames)
PEERS: dict[str, list[str]] = {
    "evidently": ["evidently>=0.7,<0.8", "pandas<3", "pyarrow"],
    "alibi": ["alibi-detect", "pandas<3", "pyarrow<20"],  # alibi-detect pins numpy < 2
    "nannyml": ["nannyml==0.13.1", "pandas<3", "statsmodels", "pyarrow"],
}
# whole runs per side (the window alone is timed a few more times on the last fit)
REPEAT = {"scipy": 5, "driftline": 5, "alibi": 3, "nannyml": 2, "evidently": 1}
ROUNDED = {"scipy", "driftline"}  # the sides run ``--rounds`` times, in alternation
TIMEOUT_S = 3600
# the targets, per window: Driftline >= 20x faster than the scipy loop, >= 500x
# than Evidently, with 4 true / 0 false flags; whole run no slower than the scipy loop's
TARGET_VS_SCIPY, TARGET_VS_EVIDENTLY = 20.0, 500.0
PLANTED = 4


# ---- the frames ----------------------------------------------------------------------------


def _numeric(rng: np.random.Generator, kind: int, n: int, j: int) -> np.ndarray[Any, Any]:
    if kind == 0:
        return rng.normal(j % 7 - 3.0, 1.0 + (j % 3) * 0.5, n)
    if kind == 1:
        return rng.lognormal(0.0, 0.4 + (j % 4) * 0.15, n)
    low = rng.random(n) < 0.7
    return np.where(low, rng.normal(0.0, 1.0, n), rng.normal(3.0, 0.5, n))


def frames(rows: int, features: int, seed: int) -> tuple[pa.Table, pa.Table, dict[str, Any]]:
    """The reference and current frames (as Arrow tables) and what is planted where."""
    numeric = features * 4 // 5
    rng = np.random.default_rng([seed, features, rows])
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    planted: list[str] = []
    for j in range(numeric):
        name = f"num_{j:03d}"
        kind = j % 3
        ref[name] = _numeric(rng, kind, rows, j)
        cur[name] = _numeric(rng, kind, rows, j)
        if j == 0:  # a mean shift of 0.3 sd (kind 0: normal)
            cur[name] = cur[name] + 0.3 * ref[name].std()
            planted.append(name)
        elif j == 1:  # a scale shift (kind 1: lognormal)
            cur[name] = cur[name] * 1.4
            planted.append(name)
    for j in range(features - numeric):
        name = f"cat_{j:03d}"
        levels = np.array([f"level_{k}" for k in range(3 + j % 4)], dtype=object)
        p = rng.dirichlet(np.full(levels.size, 4.0))
        q = p.copy()
        if j < 2:  # 0.2 of the mass (at most half the commonest level's) to the rarest
            move = min(0.2, p.max() / 2)
            q[p.argmax()] -= move
            q[p.argmin()] += move
            planted.append(name)
        ref[name] = levels[rng.choice(levels.size, rows, p=p)]
        cur[name] = levels[rng.choice(levels.size, rows, p=q)]
    meta = {
        "rows": rows,
        "features": features,
        "seed": seed,
        "numeric": [f"num_{j:03d}" for j in range(numeric)],
        "categorical": [f"cat_{j:03d}" for j in range(features - numeric)],
        "planted": planted,
    }
    return _table(ref), _table(cur), meta


def _table(columns: dict[str, Any]) -> pa.Table:
    return pa.table(
        {
            name: pa.array(values, type=pa.float64() if values.dtype.kind == "f" else pa.string())
            for name, values in columns.items()
        }
    )


def data_dir(rows: int, features: int, seed: int) -> Path:
    """The folder of these frames, written once (Parquet without pandas metadata, read alike
    by pandas 2 in the peers' virtualenvs and pandas 3 in ours)."""
    folder = OUT / "data" / f"{rows}x{features}-seed{seed}"
    if not (folder / "meta.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        reference, current, meta = frames(rows, features, seed)
        pq.write_table(reference, folder / "reference.parquet")
        pq.write_table(current, folder / "current.parquet")
        (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    return folder


# ---- running the sides ---------------------------------------------------------------------


def side_python(tool: str) -> Path:
    if tool in PEERS:
        return peers.peer_python(tool, PEERS[tool])
    return Path(sys.executable)


def run_side(tool: str, folder: Path, repeat: int) -> dict[str, Any]:
    """One side in its own process; its JSON result, or ``{"error": ...}``."""
    out = OUT / f"{folder.name}-{tool}.json"
    out.unlink(missing_ok=True)
    try:
        python = side_python(tool)
    except (OSError, subprocess.CalledProcessError) as error:
        return {"error": f"install failed: {error}"}
    if tool == "driftline":
        command = [str(python), "-m", "bench.drift_peers", "--side-driftline", str(folder)]
    else:
        command = [str(python), str(SIDE), tool, str(folder)]
    command += ["--out", str(out), "--repeat", str(repeat)]
    env = {
        **os.environ,
        "NML_DISABLE_USAGE_LOGGING": "1",
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": str(ROOT) if tool == "driftline" else "",
    }
    try:
        done = subprocess.run(
            command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return {"error": f"ran past {TIMEOUT_S} s"}
    if done.returncode != 0 or not out.exists():
        last = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return {"error": f"exit {done.returncode}: {last[-1] if last else 'no output'}"}
    result: dict[str, Any] = json.loads(out.read_text())
    return result


# ---- Driftline's side (a subprocess of this interpreter) -----------------------------------


def _columns(frame: Any) -> dict[str, Any]:
    """A frame's columns as an uploaded file's become them: what
    ``api.routes.drift._frame_reference`` hands ``ModelReference.from_columns`` (kept here so
    that the side does not import the API's web stack, which would swell its RSS)."""
    columns: dict[str, Any] = {}
    for name in frame.columns:
        series = frame[name]
        if series.dtype.kind in "fiu":
            columns[str(name)] = series.to_numpy(dtype="float64")
        else:
            values = series.astype(object)
            columns[str(name)] = values.where(values.notna(), None).tolist()
    return columns


def driftline_side(folder: Path, out: Path, repeat: int) -> None:
    import pandas as pd

    from detectors.columns import columns_batch
    from detectors.drift.window import DriftConfig, ModelReference, compare_window
    from detectors.profile import ProfileConfig, WindowProfile

    reference_frame = pd.read_parquet(folder / "reference.parquet")
    current_frame = pd.read_parquet(folder / "current.parquet")
    loaded_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    config = DriftConfig()

    def fold() -> WindowProfile:
        profile = WindowProfile(0, 60, ProfileConfig())
        profile.add(columns_batch(_columns(current_frame), None))
        return profile

    whole, reference_s, fold_s, flagged = [], [], [], []
    reference: ModelReference | None = None
    window: WindowProfile | None = None
    for _ in range(repeat):
        began = time.perf_counter()
        reference = ModelReference.from_columns(_columns(reference_frame), None, "1")
        built = time.perf_counter()
        window = fold()
        folded = time.perf_counter()
        report = compare_window(reference, window, config)
        whole.append(time.perf_counter() - began)
        reference_s.append(built - began)
        fold_s.append(folded - built)
        flagged = list(report.drifted_features)
    assert reference is not None and window is not None
    window_s = []
    for _ in range(max(9, repeat)):
        began = time.perf_counter()
        compare_window(reference, window, config)
        window_s.append(time.perf_counter() - began)
    from importlib.metadata import version

    result = {
        "tool": "driftline",
        "version": version("driftline"),
        "whole_s": whole,
        "window_s": window_s,
        "parts_s": {
            "reference": statistics.median(reference_s),
            "fold": statistics.median(fold_s),
        },
        "flagged": flagged,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "loaded_rss_kb": loaded_kb,
    }
    out.write_text(json.dumps(result, indent=1))


# ---- the table -----------------------------------------------------------------------------


def _s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _ratio(theirs: float | None, ours: float | None) -> str:
    if theirs is None or ours is None or ours <= 0:
        return "-"
    value = theirs / ours
    return f"{value:.0f}x" if value >= 10 else f"{value:.2f}x"


def pool(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's runs as one: timings pooled, the highest peak RSS, the last run's flags
    (and whether any run flagged otherwise)."""
    done = [r for r in runs if "error" not in r]
    if not done:
        return runs[-1]
    pooled = {**done[-1]}
    pooled["whole_s"] = [t for r in done for t in r["whole_s"]]
    pooled["window_s"] = [t for r in done for t in r["window_s"]]
    pooled["peak_rss_kb"] = max(r["peak_rss_kb"] for r in done)
    pooled["runs"] = len(done)
    pooled["flags_differ"] = len({tuple(sorted(r["flagged"])) for r in done}) > 1
    if "parts_s" in pooled:
        pooled["parts_s"] = {
            k: statistics.median(r["parts_s"][k] for r in done) for k in pooled["parts_s"]
        }
    return pooled


def summarise(result: dict[str, Any], planted: Sequence[str]) -> dict[str, Any]:
    """Medians and flag counts of one side's result."""
    if "error" in result:
        return result
    flagged = set(result["flagged"])
    return {
        **result,
        "whole": statistics.median(result["whole_s"]),
        "window": statistics.median(result["window_s"]),
        "true": len(flagged & set(planted)),
        "false": len(flagged - set(planted)),
        "rss_mb": result["peak_rss_kb"] / 1024,
    }


HEADER = (
    f"{'features':>8} {'tool':10} {'version':>9} {'whole s':>8} {'scipy/it':>8} "
    f"{'window s':>9} {'scipy/it':>8} {'peak RSS MB':>11} {'true':>4} {'false':>5}"
)


def lines_for(features: int, summary: dict[str, dict[str, Any]]) -> list[str]:
    scipy = summary.get("scipy", {})
    lines = []
    for tool in TOOLS:
        r = summary.get(tool)
        if r is None:
            continue
        if "error" in r:
            lines.append(f"{features:>8} {tool:10} unavailable: {r['error']}"[:200])
            continue
        lines.append(
            f"{features:>8} {tool:10} {str(r.get('version', '-'))[:9]:>9} {_s(r['whole']):>8} "
            f"{_ratio(scipy.get('whole'), r['whole']):>8} {_s(r['window']):>9} "
            f"{_ratio(scipy.get('window'), r['window']):>8} {r['rss_mb']:>11.0f} "
            f"{r['true']:>4} {r['false']:>5}"
        )
    return lines


def targets(features: int, summary: dict[str, dict[str, Any]]) -> list[str]:
    """Whether Driftline met the issue's targets at this width (never assumed)."""
    ours, scipy, evidently = (summary.get(t, {}) for t in ("driftline", "scipy", "evidently"))
    if "window" not in ours:
        return [f"{features:>8} targets: Driftline did not run", *notes(features, summary)]
    flags_ok = ours["true"] == PLANTED and ours["false"] == 0
    out = [f"{features:>8} flags {ours['true']} true / {ours['false']} false: "
           f"{'met' if flags_ok else 'NOT met'}"]  # fmt: skip
    for name, peer, wanted in (
        ("scipy loop", scipy, TARGET_VS_SCIPY),
        ("Evidently", evidently, TARGET_VS_EVIDENTLY),
    ):
        if "window" not in peer:
            out.append(f"{features:>8} per window vs {name}: {name} unavailable")
            continue
        faster = peer["window"] / ours["window"]
        met = "met" if faster >= wanted else "NOT met"
        out.append(
            f"{features:>8} per window {faster:,.0f}x faster than {name} (target "
            f"{wanted:.0f}x): {met}"
        )
    if "whole" in scipy:
        met = "met" if ours["whole"] <= scipy["whole"] else "NOT met"
        out.append(
            f"{features:>8} whole run {ours['whole']:.2f} s vs the scipy loop's "
            f"{scipy['whole']:.2f} s ({ours['whole'] / scipy['whole']:.2f}; target <= 1): {met}"
        )
    parts = ours.get("parts_s", {})
    if parts:
        out.append(
            f"{features:>8} Driftline's whole run: reference from columns "
            f"{parts['reference']:.2f} s, window folded {parts['fold']:.2f} s, compare_window "
            f"{ours['window']:.3f} s"
        )
    return [*out, *notes(features, summary)]


def notes(features: int, summary: dict[str, dict[str, Any]]) -> list[str]:
    """What the peers report beside their flags."""
    out = [
        f"{features:>8} {tool}: its runs did not all flag the same features"
        for tool, r in summary.items()
        if r.get("flags_differ")
    ]
    evidently = summary.get("evidently", {})
    nannyml, evidently_info = summary.get("nannyml", {}), evidently.get("info", {})
    if "flagged_with_default_thresholds" in nannyml.get("info", {}):
        out.append(
            f"{features:>8} NannyML with its default KS threshold (0 with one reference chunk): "
            f"{nannyml['info']['flagged_with_default_thresholds']} features flagged"
        )
    if "drifted_columns_count" in evidently_info:
        out.append(
            f"{features:>8} Evidently's own DriftedColumnsCount: "
            f"{evidently_info['drifted_columns_count']:.0f}"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows, 50 features")
    parser.add_argument("--rows", type=int, help="rows of each frame (default 100,000)")
    parser.add_argument("--features", type=int, nargs="+", help="widths (default 50 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=TOOLS, help="run these sides only")
    parser.add_argument("--skip", nargs="+", choices=TOOLS, default=[], help="skip these sides")
    parser.add_argument("--repeat", type=int, help="whole runs per side (default: per side)")
    parser.add_argument("--rounds", type=int, default=3, help="processes of scipy and driftline")
    parser.add_argument("--side-driftline", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side_driftline is not None:
        driftline_side(args.side_driftline, args.out, args.repeat or REPEAT["driftline"])
        return
    rows = args.rows or (20_000 if args.quick else 100_000)
    widths = args.features or ([50] if args.quick else [50, 100])
    tools = [t for t in (args.only or TOOLS) if t not in args.skip]
    started = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows,
        "seed": args.seed,
        "runs": {},
    }
    printed: list[str] = []
    for features in widths:
        folder = data_dir(rows, features, args.seed)
        planted = json.loads((folder / "meta.json").read_text())["planted"]
        results: dict[str, list[dict[str, Any]]] = {}
        # the cheap sides run again in alternation (scipy, driftline, scipy, ...): a burst of
        # load on this shared machine then hits both alike; their timings are pooled
        order = [*tools] + [t for _ in range(args.rounds - 1) for t in tools if t in ROUNDED]
        for tool in order:
            print(f"{features} features, {rows:,} rows: {tool} ...", flush=True)
            began = time.perf_counter()
            result = run_side(tool, folder, args.repeat or REPEAT[tool])
            results.setdefault(tool, []).append(result)
            took = time.perf_counter() - began
            print(f"  {tool}: {result.get('error', 'done')} ({took:.0f} s with start-up)")
        summary = {tool: summarise(pool(runs), planted) for tool, runs in results.items()}
        report["runs"][str(features)] = summary
        printed += [*lines_for(features, summary), *targets(features, summary), ""]
    print()
    print(f"drift tests, {rows:,} reference rows vs {rows:,} current rows, {PLANTED} planted")
    print("shifts (whole: frames in memory to flags; window: against the prepared reference;")
    print("medians; ratios against the scipy loop of this run)")
    print(HEADER)
    print("-" * len(HEADER))
    for line in printed:
        print(line)
    elapsed = time.perf_counter() - started
    print(f"bench took {elapsed:.0f} s")
    report["took_s"] = elapsed
    report["table"] = [HEADER, *printed]
    (OUT / f"report-{rows}.json").write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
