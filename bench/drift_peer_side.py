"""A peer's side of `make bench-peers`; it runs in that peer's own virtualenv.

``bench/drift_peers.py`` writes the frames and runs this script once per peer, in
``.bench-venvs/<peer>`` (the scipy loop in the project's interpreter). It imports only the
peer, pandas, numpy, scipy and the standard library, never the project.

    python bench/drift_peer_side.py TOOL DATA_DIR --out RESULT.json --repeat N

TOOL is ``scipy``, ``alibi``, ``nannyml`` or ``evidently``. Each tool has a *prepare* step
(its reference: arrays, a fit, a Dataset) and a *window* step (the current frame against the
prepared reference, down to the flagged features). The whole run (prepare + window, from the
frames in memory) is timed ``N`` times, the window step alone a few more times on the last
prepared reference, and the process reports its own peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

# this script's folder (bench/) would shadow the peers' own imports: bench/catalogue.py is
# not the ``catalogue`` package Alibi Detect imports
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ALPHA = 0.05
# the window step alone, timed this many more times after the whole runs
EXTRA_WINDOWS = {"scipy": 4, "alibi": 2, "nannyml": 1, "evidently": 0}

Prepare = Callable[[pd.DataFrame], Any]
Window = Callable[[Any, pd.DataFrame], list[str]]
INFO: dict[str, Any] = {}  # what a tool reports beside its flags (written with the result)
AFTER: list[Callable[[pd.DataFrame, pd.DataFrame], None]] = []  # untimed, after the timing


# ---- a plain per-feature scipy loop --------------------------------------------------------


def scipy_tool(meta: dict[str, Any]) -> tuple[str, Prepare, Window]:
    import scipy
    from scipy import stats

    numeric, categorical = meta["numeric"], meta["categorical"]

    def prepare(reference: pd.DataFrame) -> Any:
        arrays = {n: reference[n].to_numpy(dtype=float) for n in numeric}
        counts = {c: reference[c].value_counts() for c in categorical}
        return arrays, counts

    def window(prepared: Any, current: pd.DataFrame) -> list[str]:
        arrays, counts = prepared
        flagged = []
        for name in numeric:
            if stats.ks_2samp(arrays[name], current[name].to_numpy(dtype=float)).pvalue < ALPHA:
                flagged.append(name)
        for name in categorical:
            both = pd.concat([counts[name], current[name].value_counts()], axis=1).fillna(0)
            if stats.chi2_contingency(both.to_numpy().T).pvalue < ALPHA:
                flagged.append(name)
        return flagged

    return scipy.__version__, prepare, window


# ---- Alibi Detect: TabularDrift (KS + chi-square, Bonferroni) ------------------------------


def alibi_tool(meta: dict[str, Any]) -> tuple[str, Prepare, Window]:
    import alibi_detect
    from alibi_detect.cd import TabularDrift

    numeric, categorical = meta["numeric"], meta["categorical"]
    names = [*numeric, *categorical]
    first_categorical = len(numeric)

    def encode(frame: pd.DataFrame, levels: dict[str, dict[str, int]]) -> np.ndarray:
        """Numbers as they are, categories as the reference's codes (unseen: a new code)."""
        out = np.empty((len(frame), len(names)), dtype=np.float64)
        for j, name in enumerate(numeric):
            out[:, j] = frame[name].to_numpy(dtype=float)
        for j, name in enumerate(categorical, start=first_categorical):
            codes = levels[name]
            out[:, j] = frame[name].map(codes).fillna(len(codes)).to_numpy(dtype=float)
        return out

    def prepare(reference: pd.DataFrame) -> Any:
        levels = {
            c: {v: i for i, v in enumerate(sorted(reference[c].dropna().unique()))}
            for c in categorical
        }
        detector = TabularDrift(
            encode(reference, levels),
            p_val=ALPHA,
            categories_per_feature={j: None for j in range(first_categorical, len(names))},
            correction="bonferroni",
        )
        return detector, levels

    def window(prepared: Any, current: pd.DataFrame) -> list[str]:
        detector, levels = prepared
        result = detector.predict(encode(current, levels), drift_type="batch")["data"]
        # the features whose p-value is under the corrected threshold the batch decision used
        below = np.asarray(result["p_val"]) < result["threshold"]
        return [names[j] for j in np.flatnonzero(below)]

    return alibi_detect.__version__, prepare, window


# ---- NannyML: UnivariateDriftCalculator, one chunk -----------------------------------------


def ks_critical(n: int, m: int, alpha: float = ALPHA) -> float:
    """The two-sample KS statistic at which the asymptotic p-value is ``alpha``."""
    return float(np.sqrt(-np.log(alpha / 2) / 2) * np.sqrt((n + m) / (n * m)))


def nannyml_tool(meta: dict[str, Any]) -> tuple[str, Prepare, Window]:
    """KS's default threshold is the mean + 3 sd of the statistic over the reference's
    chunks; with the reference as one chunk it is 0 and every numeric feature alerts. So KS
    alerts at its critical value for p < 0.05 (a ``ConstantThreshold``), as chi2 alerts at
    p < 0.05 by itself; what the default gives is reported beside (``info``)."""
    import nannyml
    from nannyml.thresholds import ConstantThreshold

    names = [*meta["numeric"], *meta["categorical"]]

    def calculator(thresholds: dict[str, Any] | None) -> Any:
        return nannyml.UnivariateDriftCalculator(
            column_names=names,
            treat_as_categorical=meta["categorical"],
            continuous_methods=["kolmogorov_smirnov"],
            categorical_methods=["chi2"],
            chunk_number=1,
            thresholds=thresholds,
        )

    def prepare(reference: pd.DataFrame) -> Any:
        upper = ks_critical(len(reference), meta["rows"])  # the current frame's rows
        ks = {"kolmogorov_smirnov": ConstantThreshold(lower=None, upper=upper)}
        return calculator(ks).fit(reference)

    def window(fitted: Any, current: pd.DataFrame) -> list[str]:
        return alerts(fitted.calculate(current))

    def alerts(result: Any) -> list[str]:
        frame = result.filter(period="analysis").to_df()
        flagged = []
        for name in names:
            method = "chi2" if name in meta["categorical"] else "kolmogorov_smirnov"
            if bool(frame[(name, method, "alert")].any()):
                flagged.append(name)
        return flagged

    def with_default(reference: pd.DataFrame, current: pd.DataFrame) -> None:
        flagged = alerts(calculator(None).fit(reference).calculate(current))
        INFO["flagged_with_default_thresholds"] = len(flagged)

    AFTER.append(with_default)
    return nannyml.__version__, prepare, window


# ---- Evidently: DataDriftPreset ------------------------------------------------------------


def evidently_tool(meta: dict[str, Any]) -> tuple[str, Prepare, Window]:
    import evidently
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=list(meta["numeric"]), categorical_columns=list(meta["categorical"])
    )
    names = [*meta["numeric"], *meta["categorical"]]

    def prepare(reference: pd.DataFrame) -> Any:
        return Dataset.from_pandas(reference, data_definition=definition)

    def window(reference: Any, current: pd.DataFrame) -> list[str]:
        data = Dataset.from_pandas(current, data_definition=definition)
        snapshot = Report([DataDriftPreset()]).run(data, reference)
        return evidently_drifted(snapshot, names)

    return evidently.__version__, prepare, window


def evidently_drifted(snapshot: Any, names: list[str]) -> list[str]:
    """The columns whose ValueDrift result crosses its threshold (a distance at or above
    it; a p-value below it), checked against Evidently's own DriftedColumnsCount."""
    flagged = []
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if str(config.get("type", "")).endswith("DriftedColumnsCount"):
            INFO["drifted_columns_count"] = metric["value"]["count"]
        column = config.get("column")
        if column not in names or "threshold" not in config:
            continue
        method = str(config.get("method", ""))
        value, threshold = float(metric["value"]), float(config["threshold"])
        p_value = "p_value" in method or "test" in method.lower()
        if (value < threshold) if p_value else (value >= threshold):
            flagged.append(column)
    return flagged


TOOLS = {
    "scipy": scipy_tool,
    "alibi": alibi_tool,
    "nannyml": nannyml_tool,
    "evidently": evidently_tool,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tool", choices=sorted(TOOLS))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    meta = json.loads((args.folder / "meta.json").read_text())
    version, prepare, window = TOOLS[args.tool](meta)
    reference = pd.read_parquet(args.folder / "reference.parquet")
    current = pd.read_parquet(args.folder / "current.parquet")
    loaded_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    whole, window_s, flagged = [], [], []
    prepared = None
    for _ in range(args.repeat):
        began = time.perf_counter()
        prepared = prepare(reference)
        ready = time.perf_counter()
        flagged = window(prepared, current)
        done = time.perf_counter()
        whole.append(done - began)
        window_s.append(done - ready)
    for _ in range(EXTRA_WINDOWS[args.tool]):
        began = time.perf_counter()
        window(prepared, current)
        window_s.append(time.perf_counter() - began)
    for after in AFTER:
        after(reference, current)
    result = {
        "tool": args.tool,
        "version": version,
        "whole_s": whole,
        "window_s": window_s,
        "flagged": flagged,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "loaded_rss_kb": loaded_kb,
        "python": sys.version.split()[0],
        "info": INFO,
    }
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
