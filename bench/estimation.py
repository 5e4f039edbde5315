"""`make bench-estimation`: label-free quality estimation, Driftline's against NannyML's CBPE
and DLE, side by side on the same chunks.

NannyML (0.13.1, the peer) runs in its own virtualenv, ``.bench-venvs/nannyml``, created here
when missing (it pins pandas < 3 and needs statsmodels, which clash with the project's own
environment; it is never a dependency of the project). There ``bench/nannyml_side.py`` exports
the three synthetic data sets NannyML ships (binary car loan, multi-class credit card, car
price regression) and runs NannyML on them and on three shifts simulated here (seeded):

    sim_hurt    a calibrated binary model whose inputs drift towards its decision boundary
                (more events the model is unsure of: accuracy falls from ~0.81 to ~0.74)
    sim_benign  the same model whose inputs drift away from it, plus a shift in a feature the
                model ignores (covariate shift that does not hurt: accuracy rises to ~0.88)
    sim_hetero  a regression whose noise grows with x1, and x1 drifts into the noisy region
                (MAE from ~0.6 to ~1.6)
    sim_multi   a calibrated three-class model whose inputs drift towards the point where
                its classes tie (accuracy from ~0.73 to ~0.59): the control for probability
                lists that need no calibration (the credit card's model is a little
                over-confident, and takes a temperature)

Then, in this interpreter and on the very chunks NannyML used (chunk sizes 1,000 and 5,000):
``detectors.estimation``'s CBPE / DLE fit on the reference, estimate each analysis chunk, and
the realised metric comes from the targets (``score_quality``; ROC AUC in numpy).

Prints per data set x chunk size x metric the mean absolute error of each side's estimate
against the realised value, the ratio ours / NannyML (target <= 1), the time an analysis chunk
costs each side (NannyML's estimate of the whole analysis / chunks; ours the sum of its
per-chunk calls / chunks, twice: from rows already decoded as the product receives them, a
dict of features per event, and from the frame's columns as arrays, what NannyML is given
and what a batch caller passes, checked to give the same estimates; the median of
``--repeat`` passes each; fits reported apart) and the ratios NannyML / ours (target >= 10),
and the share of chunks whose realised value lies in each side's band. Then the false-alarm
check: how often ``estimated_drop_test(reference, estimates).is_drift(0.05)`` fires over
stationary windows of 1,000 (target <= 1 in 1,000), and how soon it fires after a shift that
hurts. ``--quick``: chunks of 1,000 only, every reference cut to its first 10,000 rows (both
sides), shorter simulations, 200 stationary windows. Writes only under
``bench-results/estimation/``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from bench import peers
from detectors.quality import QualityStats, quality_drop_test, score_quality, weighted_roc_auc

ROOT = Path(__file__).resolve().parent.parent
PEER = ["nannyml==0.13.1", "pandas<3", "statsmodels"]  # nannyml imports statsmodels undeclared
OUT = ROOT / "bench-results" / "estimation"
DATA = OUT / "data"
NANNYML_DATASETS = ["car_loan", "credit_card", "car_price"]
SIM_DATASETS = ["sim_hurt", "sim_benign", "sim_hetero", "sim_multi"]
MULTI_CLASSES = ["a", "b", "c"]
SHIFT_START = 10_000  # analysis rows of the simulations before their shift begins
# analysis rows of each simulation: 200 chunks of 5,000. With fewer, the MAE of two estimators
# that differ by a hair ranks them by chance: raw and isotonic-calibrated scores of one
# calibrated model came out 1.8x apart at 8 chunks and 0.91x at 40; at 40, sim_multi's true
# probabilities lost to NannyML's maps of them (1.085) and won at 200 (0.94)
SIM_ROWS = 1_000_000
# a ratio within this of 1 is a tie, the target met: the two sides' estimates are the same
# to float rounding (the same calibration map, or none, and the same expected counts), and
# 1 + 1e-14 is no evidence of a worse estimator
TIE = 1.0 + 1e-6
# NannyML's metric name -> ours (metric, category), by task
METRICS: Mapping[str, Mapping[str, tuple[str, str]]] = {
    "binary": {
        "roc_auc": ("quality.estimated.roc_auc", ""),
        "f1": ("quality.estimated.f1", "1"),
        "accuracy": ("quality.estimated.accuracy", ""),
    },
    "multiclass": {
        "roc_auc": ("quality.estimated.roc_auc", ""),
        "f1": ("quality.estimated.f1_macro", ""),
        "accuracy": ("quality.estimated.accuracy", ""),
    },
    "regression": {"mae": ("quality.estimated.mae", ""), "rmse": ("quality.estimated.rmse", "")},
}
FloatArray = npt.NDArray[np.float64]


# ---- the peer's virtualenv and worker ------------------------------------------------------


def peer_python() -> Path:
    """The NannyML virtualenv's interpreter (``bench/peers.py``)."""
    return peers.peer_python("nannyml", PEER)


def peer(python: Path, *args: str) -> None:
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [str(python), str(ROOT / "bench" / "nannyml_side.py"), *args],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise PeerFailed(f"the NannyML worker failed ({done.returncode})")
    for line in done.stderr.splitlines():
        if line.startswith("  nannyml"):
            print(line, flush=True)


# ---- the simulated shifts ------------------------------------------------------------------


def _sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def _binary_rows(
    rng: np.random.Generator, n: int, near: FloatArray, far: FloatArray, x3_shift: FloatArray
) -> pd.DataFrame:
    """A calibrated binary model: p = sigmoid(2 x1 + x2), y ~ Bernoulli(p), x3 unused.

    ``near`` / ``far`` (per row, in [0, 1]): the share of rows drawn near the boundary
    (x1 ~ N(0, 0.3)) / far from it (|x1| ~ 1.5 + |N(0, 0.5)|) instead of x1 ~ N(0, 1.2).
    """
    x1 = rng.normal(0.0, 1.2, n)
    u = rng.random(n)
    x1 = np.where(u < near, rng.normal(0.0, 0.3, n), x1)
    far_x = rng.choice([-1.0, 1.0], n) * (1.5 + np.abs(rng.normal(0.0, 0.5, n)))
    x1 = np.where((u >= near) & (u < near + far), far_x, x1)
    x2 = rng.normal(0.0, 0.8, n)
    x3 = rng.normal(x3_shift, 1.0, n)
    p = _sigmoid(2.0 * x1 + x2)
    y = (rng.random(n) < p).astype(int)
    score = np.round(p, 4)  # the prediction is of the score as stored
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "x3": x3,
            "y_pred_proba": score,
            "y_pred": (score >= 0.5).astype(int),
            "y_true": y,
        }
    )


def _hetero_rows(rng: np.random.Generator, n: int, x1_mean: FloatArray) -> pd.DataFrame:
    """y = 3 x1 + 2 x2 + offset(c) + noise whose sd grows from 0.5 to 3 past x1 = 1.5; the
    model predicts the conditional mean (right on average, its error all noise)."""
    x1 = rng.normal(x1_mean, 1.0, n)
    x2 = rng.normal(0.0, 1.0, n)
    c = rng.choice(np.array(["a", "b", "c"]), n, p=[0.5, 0.3, 0.2])
    mean = 3.0 * x1 + 2.0 * x2 + np.select([c == "a", c == "b"], [0.0, 1.0], 2.5)
    sd = 0.5 + 2.5 * _sigmoid(3.0 * (x1 - 1.5))
    y = mean + rng.normal(0.0, 1.0, n) * sd
    return pd.DataFrame({"x1": x1, "x2": x2, "c": c, "y_pred": mean, "y_true": y})


def _multi_rows(rng: np.random.Generator, n: int, near: FloatArray) -> pd.DataFrame:
    """A calibrated three-class model: logits (0, 2 x1 + 0.3, 2 x2 - 0.2), y drawn from their
    softmax, x3 unused; ``near`` (per row): the share of rows drawn near the origin (x1, x2 ~
    N(0, 0.3)), where the classes come close to a tie, instead of N(0, 1.2)."""
    x = rng.normal(0.0, 1.2, (n, 2))
    x = np.where((rng.random(n) < near)[:, None], rng.normal(0.0, 0.3, (n, 2)), x)
    logits = np.column_stack([np.zeros(n), 2.0 * x[:, 0] + 0.3, 2.0 * x[:, 1] - 0.2])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    classes = np.array(MULTI_CLASSES)
    score = p  # unrounded: NannyML's AUC needs each list to sum to 1 within 1e-5
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": rng.normal(0.0, 1.0, n)})
    for j, c in enumerate(MULTI_CLASSES):
        frame[f"y_pred_proba_{c}"] = score[:, j]
    frame["y_pred"] = classes[np.argmax(score, axis=1)]
    frame["y_true"] = classes[np.minimum(y, len(classes) - 1)]
    return frame


def _ramp(n: int, start: int, top: float) -> FloatArray:
    """0 for the first ``start`` rows, then a straight rise to ``top`` at the last row."""
    at = np.arange(n, dtype=np.float64)
    return np.clip((at - start) / max(1, n - start - 1), 0.0, 1.0) * top


def simulate(name: str, rng: np.random.Generator, n: int, shifted: bool) -> pd.DataFrame:
    ramp = _ramp(n, SHIFT_START, 1.0) if shifted else np.zeros(n)
    if name == "sim_hurt":
        return _binary_rows(rng, n, 0.6 * ramp, np.zeros(n), np.zeros(n))
    if name == "sim_benign":
        return _binary_rows(rng, n, np.zeros(n), 0.5 * ramp, 2.0 * ramp)
    if name == "sim_multi":
        return _multi_rows(rng, n, 0.6 * ramp)
    return _hetero_rows(rng, n, 1.8 * ramp)


def write_simulations(reference_rows: int, analysis_rows: int, seed: int) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(SIM_DATASETS):
        reference = simulate(name, np.random.default_rng([seed, i, 0]), reference_rows, False)
        analysis = simulate(name, np.random.default_rng([seed, i, 1]), analysis_rows, True)
        reference.to_parquet(DATA / f"{name}_reference.parquet")
        analysis.to_parquet(DATA / f"{name}_analysis.parquet")
        regression, multi = name == "sim_hetero", name == "sim_multi"
        meta = {
            "task": "regression" if regression else "multiclass" if multi else "binary",
            "features": ["x1", "x2", "c"] if regression else ["x1", "x2", "x3"],
            "proba": (
                []
                if regression
                else [f"y_pred_proba_{c}" for c in MULTI_CLASSES]
                if multi
                else ["y_pred_proba"]
            ),
            "classes": [] if regression else MULTI_CLASSES if multi else ["0", "1"],
            "source": f"driftline simulation, seed {seed}",
            "shift_start": SHIFT_START,
            "rows": [reference_rows, analysis_rows],
        }
        (DATA / f"{name}.json").write_text(json.dumps(meta, indent=1))


# ---- the data in this interpreter ----------------------------------------------------------


@dataclass
class Dataset:
    name: str
    meta: dict[str, Any]
    reference: pd.DataFrame
    analysis: pd.DataFrame

    @property
    def task(self) -> str:
        return str(self.meta["task"])

    def predictions(self, frame: pd.DataFrame) -> list[Any]:
        if self.task == "multiclass":
            return [list(map(float, row)) for row in frame[self.meta["proba"]].to_numpy()]
        column = "y_pred_proba" if self.task == "binary" else "y_pred"
        return [float(v) for v in frame[column].to_numpy()]

    def labels(self, frame: pd.DataFrame) -> list[Any]:
        if self.task == "multiclass":
            index = {c: i for i, c in enumerate(self.meta["classes"])}
            return [index[str(v)] for v in frame["y_true"]]
        if self.task == "binary":
            return [int(v) for v in frame["y_true"]]
        return [float(v) for v in frame["y_true"]]

    def features(self, frame: pd.DataFrame) -> list[dict[str, object]]:
        records: list[dict[str, object]] = frame[self.meta["features"]].to_dict("records")
        return records


def load(name: str) -> Dataset:
    meta = json.loads((DATA / f"{name}.json").read_text())
    return Dataset(
        name,
        meta,
        pd.read_parquet(DATA / f"{name}_reference.parquet"),
        pd.read_parquet(DATA / f"{name}_analysis.parquet"),
    )


def _auc(score: FloatArray, positive: npt.NDArray[np.bool_]) -> float:
    """The measured ROC AUC, as Driftline computes ``quality.roc_auc``."""
    auc = weighted_roc_auc(score, positive.astype(np.float64))
    return float("nan") if auc is None else auc


def realised(data: Dataset, frame: pd.DataFrame) -> dict[str, float]:
    """The realised value of every compared metric on one chunk, from its targets."""
    result = score_quality(data.predictions(frame), data.labels(frame))
    if data.task == "regression":
        return {
            "mae": result.metric_value("quality.mae") or 0.0,
            "rmse": result.metric_value("quality.rmse") or 0.0,
        }
    values = {"accuracy": result.metric_value("quality.accuracy") or 0.0}
    if data.task == "binary":
        values["f1"] = result.metric_value("quality.f1", "1") or 0.0
        values["roc_auc"] = _auc(
            frame["y_pred_proba"].to_numpy(float), frame["y_true"].to_numpy() == 1
        )
    else:
        values["f1"] = result.metric_value("quality.f1_macro") or 0.0
        truth = frame["y_true"].astype(str).to_numpy()
        values["roc_auc"] = float(
            np.mean(
                [
                    _auc(frame[column].to_numpy(float), truth == c)
                    for c, column in zip(data.meta["classes"], data.meta["proba"], strict=True)
                ]
            )
        )
    return values


def reference_stats(data: Dataset, frame: pd.DataFrame) -> QualityStats:
    return score_quality(data.predictions(frame), data.labels(frame)).stats


# ---- our side ------------------------------------------------------------------------------


@dataclass
class OurRun:
    fit_s: float
    per_chunk_s: float  # from rows, as the product receives them
    per_chunk_columns_s: float  # from a batch caller's arrays
    estimated: list[dict[str, float]]
    estimates: list[Sequence[Any]]  # each chunk's Estimate list, for the drop test
    missing: set[str]
    bands: list[dict[str, tuple[float, float]]]  # each chunk's (lower, upper) per metric


class Fitted(NamedTuple):
    fit_s: float
    rows: Callable[[pd.DataFrame], Any]  # a chunk -> inputs as the product receives them
    columns: Callable[[pd.DataFrame], Any]  # a chunk -> inputs as a batch caller's arrays
    estimate: Callable[[Any], Sequence[Any]]


_FITTED: dict[str, Fitted] = {}


def our_estimator(data: Dataset) -> Fitted:
    """Fit on the reference (once a data set: the fit does not depend on the chunk size)."""
    if data.name not in _FITTED:
        _FITTED[data.name] = _fit(data)
    return _FITTED[data.name]


def _fit(data: Dataset) -> Fitted:
    from detectors.estimation import CBPE, DLE

    reference = data.reference
    if data.task == "regression":
        inputs_r = (data.features(reference), data.predictions(reference))
        began = time.perf_counter()
        dle = DLE.fit(*inputs_r, data.labels(reference), seed=0)
        fit_s = time.perf_counter() - began

        def to_rows(frame: pd.DataFrame) -> Any:
            return data.features(frame), data.predictions(frame)

        def to_columns(frame: pd.DataFrame) -> Any:
            columns = {c: frame[c].to_numpy() for c in data.meta["features"]}
            return columns, frame["y_pred"].to_numpy()

        return Fitted(fit_s, to_rows, to_columns, lambda inputs: dle.estimate(*inputs))
    predictions = data.predictions(reference)
    began = time.perf_counter()
    cbpe = CBPE.fit(predictions, data.labels(reference), threshold=0.5)
    fit_s = time.perf_counter() - began

    def scores(frame: pd.DataFrame) -> Any:
        if data.task == "multiclass":
            return frame[data.meta["proba"]].to_numpy(dtype=np.float64)
        return frame["y_pred_proba"].to_numpy(dtype=np.float64)

    return Fitted(fit_s, data.predictions, scores, cbpe.estimate)


def _inputs(
    fitted: Fitted, data: Dataset, bounds: Sequence[tuple[int, int]]
) -> tuple[list[Any], list[Any]]:
    """Each chunk's inputs from rows and from columns, built before any clock starts."""
    frames = [data.analysis.iloc[a:b] for a, b in bounds]
    return [fitted.rows(f) for f in frames], [fitted.columns(f) for f in frames]


def _timed(estimate: Callable[[Any], Sequence[Any]], inputs: Sequence[Any]) -> float:
    """Seconds a chunk: one pass of ``estimate`` over the chunks' inputs."""
    began = time.perf_counter()
    for chunk in inputs:
        estimate(chunk)
    return (time.perf_counter() - began) / len(inputs)


def run_ours(data: Dataset, bounds: Sequence[tuple[int, int]], repeat: int) -> OurRun:
    fitted = our_estimator(data)
    fit_s, estimate = fitted.fit_s, fitted.estimate
    # inputs are built before the clock starts: the product receives decoded JSON rows, as
    # NannyML receives its DataFrame
    inputs, columns = _inputs(fitted, data, bounds)
    results = [estimate(chunk) for chunk in inputs]  # also the warm-up, as NannyML's fit's
    # a batch caller's arrays (the frame's columns, as NannyML takes them) give the same
    # estimates as the rows
    for chunk, expected in zip(columns, results, strict=True):
        if estimate(chunk) != expected:
            raise RuntimeError(f"{data.name}: the columns' estimates differ from the rows'")
    # the median of ``repeat`` passes: the machine may be shared
    per_chunk = statistics.median(_timed(estimate, inputs) for _ in range(repeat))
    per_chunk_columns = statistics.median(_timed(estimate, columns) for _ in range(repeat))
    wanted = METRICS[data.task]
    missing: set[str] = set()
    estimated, bands = [], []
    nan = float("nan")
    for found in results:
        by_key = {(e.metric, e.category): e for e in found}
        row, band = {}, {}
        for ours_name, key in wanted.items():
            if key not in by_key:
                missing.add(f"{key[0]}[{key[1]}]" if key[1] else key[0])
            e = by_key.get(key)
            row[ours_name] = nan if e is None else float(e.value)
            band[ours_name] = (nan, nan) if e is None else (float(e.lower), float(e.upper))
        estimated.append(row)
        bands.append(band)
    return OurRun(fit_s, per_chunk, per_chunk_columns, estimated, results, missing, bands)


# between two timed passes: the threads of the side that ran last (OpenMP's, OpenBLAS's) spin a
# while before they sleep, and on two cores they slowed the next pass of the other side by up to
# 2x (ours at 5,000 binary rows: 0.31 ms alone, 0.54-0.69 ms right after a NannyML pass)
PAUSE_S = 1.0


class PeerTimer:
    """NannyML's side serving timed estimates (``nannyml_side.py serve``), so that each of
    its timed passes sits next to one of ours: these machines' speed drifts over minutes (a
    whole side run in a slow minute moved a ratio by 2x), a ratio of neighbouring passes
    does not."""

    def __init__(self, python: Path) -> None:
        env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1", "PYTHONWARNINGS": "ignore"}
        self.process = subprocess.Popen(
            [str(python), str(ROOT / "bench" / "nannyml_side.py"), "serve", str(DATA)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def per_chunk_s(self, name: str, size: int) -> float:
        """One timed NannyML estimate of the data set's analysis (fitted on first use)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"dataset": name, "chunk_size": size}) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith("nannyml-timing "):  # nannyml_side.REPLY
                return float(json.loads(line.split(" ", 1)[1])["per_chunk_s"])
        raise PeerFailed(f"the NannyML timer exited ({self.process.wait()})")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


@dataclass
class Speed:
    ours_s: float  # per chunk from rows, the median of the rounds
    columns_s: float  # per chunk from the frame's columns (arrays)
    nannyml_s: float
    ratio: float  # the median of the rounds' NannyML / ours (rows)
    ratio_columns: float  # the same, ours from the columns


def interleaved_speed(
    timer: PeerTimer, data: Dataset, size: int, bounds: Sequence[tuple[int, int]], rounds: int
) -> Speed:
    """``rounds`` rounds of timed passes over the same chunks: NannyML's, ours from rows,
    ours from the frame's columns."""
    fitted = our_estimator(data)
    rows, columns = _inputs(fitted, data, bounds)
    timer.per_chunk_s(data.name, size)  # its fit and warm-up
    fitted.estimate(rows[0])
    fitted.estimate(columns[0])
    ours, ours_columns, theirs = [], [], []
    for _ in range(rounds):
        time.sleep(PAUSE_S)
        theirs.append(timer.per_chunk_s(data.name, size))
        time.sleep(PAUSE_S)
        ours.append(_timed(fitted.estimate, rows))
        ours_columns.append(_timed(fitted.estimate, columns))
    return Speed(
        statistics.median(ours),
        statistics.median(ours_columns),
        statistics.median(theirs),
        statistics.median(t / o for t, o in zip(theirs, ours, strict=True)),
        statistics.median(t / o for t, o in zip(theirs, ours_columns, strict=True)),
    )


def _unavailable(error: Exception) -> str:
    reason = getattr(error, "reason", None)
    return f"{type(error).__name__}: {reason or error}"


# ---- the comparison ------------------------------------------------------------------------


def _mae(estimated: Sequence[float], truth: Sequence[float]) -> float:
    a, b = np.asarray(estimated, float), np.asarray(truth, float)
    keep = ~(np.isnan(a) | np.isnan(b))
    return float(np.abs(a[keep] - b[keep]).mean()) if keep.any() else float("nan")


def _coverage(bands: Sequence[tuple[float | None, float | None]], truth: Sequence[float]) -> float:
    """The share of chunks whose realised value lies in the band."""
    inside = [
        lo <= t <= hi
        for (lo, hi), t in zip(bands, truth, strict=True)
        if lo is not None and hi is not None and np.isfinite(t) and np.isfinite(lo)
    ]
    return float(np.mean(inside)) if inside else float("nan")


def _cell(value: float | None, fmt: str, width: int) -> str:
    if value is None or not np.isfinite(value):
        return f"{'-':>{width}}"
    return f"{value:>{width}{fmt}}"


def _pct(value: float | None, width: int) -> str:
    if value is None or not np.isfinite(value):
        return f"{'-':>{width}}"
    return f"{100 * value:>{width - 1}.0f}%"


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def compare(
    datasets: Sequence[str],
    peer_runs: Mapping[tuple[str, int], Any],
    chunk_sizes: Sequence[int],
    ours_ok: str | None,
    repeat: int,
    timer: PeerTimer | None = None,
) -> tuple[list[str], dict[str, Any]]:
    header = (
        f"{'data set':12} {'chunk':>5} {'metric':8} {'n':>3} {'MAE ours':>10} {'MAE NML':>10} "
        f"{'ours/NML':>8} {'≤1':>3} {'ms rows':>8} {'ms cols':>8} {'ms NML':>8} "
        f"{'NML/rows':>8} {'≥10':>3} {'NML/cols':>8} {'≥10':>3} {'band ours':>9} {'band NML':>8}"
    )
    lines = [header, "-" * len(header)]
    fits: list[str] = []
    summary: dict[str, Any] = {"rows": [], "our_runs": {}}
    for name in datasets:
        data = load(name)
        for size in chunk_sizes:
            theirs = peer_runs.get((name, size))
            if theirs is not None:
                bounds = [(c["start"], c["end"]) for c in theirs["chunks"]]
            else:
                n = len(data.analysis)
                bounds = [(a, a + size) for a in range(0, n - size + 1, size)]
            truth = [realised(data, data.analysis.iloc[a:b]) for a, b in bounds]
            ours: OurRun | None = None
            note = ours_ok
            if note is None:
                try:
                    ours = run_ours(data, bounds, repeat)
                except Exception as error:  # an unavailable estimate is reported, not fatal
                    note = _unavailable(error)
            if ours is not None:
                summary["our_runs"][f"{name}/{size}"] = ours
            speed: Speed | None = None
            if ours is not None and theirs is not None and timer is not None:
                speed = interleaved_speed(timer, data, size, bounds, repeat)
            agree = ""
            if theirs is not None:
                worst = max(
                    abs(c["realised"][m] - t[m])
                    for c, t in zip(theirs["chunks"], truth, strict=True)
                    for m in t
                    if np.isfinite(t[m])
                )
                agree = (
                    f", NannyML {theirs['fit_s']:.2f} s; realised values of the two sides "
                    f"agree to {worst:.1e}"
                )
            fits.append(
                f"  {name} chunk {size}: fit ours "
                f"{'-' if ours is None else f'{ours.fit_s:.3f} s'}{agree}"
                + (f"; ours: {note}" if note else "")
                + (
                    f"; ours lacks {', '.join(sorted(ours.missing))}"
                    if ours is not None and ours.missing
                    else ""
                )
            )
            for metric in METRICS[data.task]:
                actual = [t[metric] for t in truth]
                mae_ours = _mae([e[metric] for e in ours.estimated], actual) if ours else None
                mae_nml = (
                    _mae([c["estimated"][metric] for c in theirs["chunks"]], actual)
                    if theirs
                    else None
                )
                ratio = mae_ours / mae_nml if mae_ours is not None and mae_nml else None
                cover_ours = _coverage([b[metric] for b in ours.bands], actual) if ours else None
                cover_nml = (
                    _coverage(
                        [(c["lower"][metric], c["upper"][metric]) for c in theirs["chunks"]],
                        actual,
                    )
                    if theirs
                    else None
                )
                ms_ours = 1e3 * ours.per_chunk_s if ours else None
                ms_columns = 1e3 * ours.per_chunk_columns_s if ours else None
                ms_nml = 1e3 * theirs["per_chunk_s"] if theirs else None
                times = ms_nml / ms_ours if ms_ours and ms_nml else None
                times_columns = ms_nml / ms_columns if ms_columns and ms_nml else None
                if speed is not None:
                    ms_ours, ms_nml = 1e3 * speed.ours_s, 1e3 * speed.nannyml_s
                    ms_columns = 1e3 * speed.columns_s
                    times, times_columns = speed.ratio, speed.ratio_columns
                ok_mae = None if ratio is None or not np.isfinite(ratio) else ratio <= TIE
                ok_speed = None if times is None else times >= 10.0
                ok_columns = None if times_columns is None else times_columns >= 10.0
                summary["rows"].append(
                    {
                        "dataset": name,
                        "chunk_size": size,
                        "metric": metric,
                        "chunks": len(bounds),
                        "mae_ours": mae_ours,
                        "mae_nannyml": mae_nml,
                        "mae_ratio": ratio,
                        "ms_ours": ms_ours,
                        "ms_ours_columns": ms_columns,
                        "ms_nannyml": ms_nml,
                        "speed_ratio": times,
                        "speed_ratio_columns": times_columns,
                        "speed_interleaved": speed is not None,
                        "mae_target_met": ok_mae,
                        "speed_target_met": ok_speed,
                        "speed_target_met_columns": ok_columns,
                        "band_coverage_ours": cover_ours,
                        "band_coverage_nannyml": cover_nml,
                    }
                )
                small = data.task != "regression"
                fmt = ".4f" if small else ".4g"
                lines.append(
                    f"{name:12} {size:>5} {metric:8} {len(bounds):>3} "
                    f"{_cell(mae_ours, fmt, 10)} {_cell(mae_nml, fmt, 10)} "
                    f"{_cell(ratio, '.3f', 8)} {_met(ok_mae):>3} "
                    f"{_cell(ms_ours, '.2f', 8)} {_cell(ms_columns, '.2f', 8)} "
                    f"{_cell(ms_nml, '.1f', 8)} "
                    f"{_cell(times, '.1f', 7)}{'x' if times else ' '} {_met(ok_speed):>3} "
                    f"{_cell(times_columns, '.1f', 7)}{'x' if times_columns else ' '} "
                    f"{_met(ok_columns):>3} "
                    f"{_pct(cover_ours, 9)} {_pct(cover_nml, 8)}"
                )
    return [*lines, "fit times and checks:", *fits], summary


# ---- the drop test: false alarms and time to fire ------------------------------------------


def _window(frame: pd.DataFrame, size: int, i: int) -> pd.DataFrame:
    return frame.iloc[i * size : (i + 1) * size]


def false_alarms(windows: int, size: int, seed: int) -> list[str]:
    """``estimated_drop_test`` over stationary windows: car-loan reference rows resampled, and
    fresh draws from the stationary simulations (binary and regression)."""
    from detectors.estimation import estimated_drop_test

    lines = []
    rng = np.random.default_rng(seed)
    cases: list[tuple[str, Dataset, Callable[[int], pd.DataFrame]]] = []
    if (DATA / "car_loan.json").exists():  # NannyML's export
        loan = load("car_loan")

        def resampled(i: int) -> pd.DataFrame:
            return loan.reference.iloc[rng.integers(0, len(loan.reference), size)]

        cases.append(("car_loan reference resampled", loan, resampled))
    for name in ("sim_hurt", "sim_hetero", "sim_multi"):
        data = load(name)
        index = SIM_DATASETS.index(name)
        fresh = simulate(name, np.random.default_rng([seed, index, 2]), windows * size, False)
        cases.append((f"{name} fresh stationary draws", data, partial(_window, fresh, size)))
    for label, data, draw in cases:
        fitted = our_estimator(data)
        stats = reference_stats(data, data.reference)
        fired = 0
        labelled = 0
        for i in range(windows):
            frame = draw(i)
            if estimated_drop_test(stats, fitted.estimate(fitted.rows(frame))).is_drift(0.05):
                fired += 1
            if quality_drop_test(stats, reference_stats(data, frame)).is_drift(0.05):
                labelled += 1
        rate = 1000 * fired / windows
        lines.append(
            f"  {label:34} {fired:>4} of {windows:,} windows of {size:,} fired "
            f"({rate:.1f} in 1,000; target <= 1: {_met(rate <= 1.0)}); the labelled "
            f"quality_drop_test: {labelled}"
        )
    return lines


def _first(data: Dataset, stats: QualityStats, chunks: list[int], size: int) -> str:
    if not chunks:
        return "never"
    k = chunks[0]
    current = reference_stats(data, _window(data.analysis, size, k)).mean_error or 0.0
    unit = "error rate" if data.task != "regression" else "MAE"
    return (
        f"chunk {k} (rows {k * size:,}-{(k + 1) * size:,}, realised {unit} "
        f"{stats.mean_error or 0.0:.3g} -> {current:.3g})"
    )


def time_to_fire(summary: Mapping[str, Any], size: int) -> list[str]:
    """On each analysis (chunks of ``size``): the first chunk the estimated test fires in, the
    first the labelled test fires in, and fires before the simulated shift began."""
    from detectors.estimation import estimated_drop_test

    lines = []
    for name in (*NANNYML_DATASETS, *SIM_DATASETS):
        run: OurRun | None = summary["our_runs"].get(f"{name}/{size}")
        if run is None:
            continue
        data = load(name)
        stats = reference_stats(data, data.reference)
        start = int(data.meta.get("shift_start", 0))
        fired, labelled = [], []
        for k, estimates in enumerate(run.estimates):
            frame = _window(data.analysis, size, k)
            if estimated_drop_test(stats, estimates).is_drift(0.05):
                fired.append(k)
            if quality_drop_test(stats, reference_stats(data, frame)).is_drift(0.05):
                labelled.append(k)
        early = sum(1 for k in fired if (k + 1) * size <= start)
        after = [k for k in fired if (k + 1) * size > start]

        lines.append(
            f"  {name:11} estimated fires in {len(fired)} of {len(run.estimates)} chunks, "
            f"{'first after the shift' if start else 'first'}: "
            f"{_first(data, stats, after, size)}; labelled test first: "
            f"{_first(data, stats, [k for k in labelled if (k + 1) * size > start], size)}"
            + (
                f"; {early} estimated fires before the shift began at row {start:,}"
                if start
                else ""
            )
        )
    return lines


class PeerFailed(RuntimeError):
    """The NannyML worker exited with an error (its stderr's tail is printed)."""


def run_peer(
    export_only: bool, max_reference: int, sizes: Sequence[int], repeat: int
) -> dict[tuple[str, int], Any]:
    python = peer_python()
    began = time.perf_counter()
    peer(python, "export", str(DATA), "--max-reference", str(max_reference))
    if export_only:
        return {}
    peer(
        python,
        "run",
        str(DATA),
        str(OUT / "nannyml.json"),
        "--datasets",
        *NANNYML_DATASETS,
        *SIM_DATASETS,
        "--chunk-sizes",
        *map(str, sizes),
        "--repeat",
        str(repeat),
    )
    print(f"NannyML side: {time.perf_counter() - began:.0f} s", flush=True)
    found = json.loads((OUT / "nannyml.json").read_text())
    return {(r["dataset"], r["chunk_size"]): r for r in found["runs"]}


# ---- main ----------------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, OurRun):
        return {
            "fit_s": value.fit_s,
            "per_chunk_s": value.per_chunk_s,
            "estimated": value.estimated,
        }
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="chunks of 1,000, references of 10,000, shorter simulations, 200 stationary windows",
    )
    parser.add_argument("--chunk-sizes", type=int, nargs="+")
    parser.add_argument("--windows", type=int, help="stationary windows of the false-alarm check")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes, median (each side)")
    parser.add_argument(
        "--no-peer",
        action="store_true",
        help="skip NannyML (our side and the false-alarm check only)",
    )
    parser.add_argument(
        "--reuse-peer",
        action="store_true",
        help="reuse the NannyML results of an earlier run (bench-results/estimation/)",
    )
    parser.add_argument(
        "--separate-timing",
        action="store_true",
        help="time each side in its own run (NannyML's from its run), not in alternating passes",
    )
    args = parser.parse_args()
    sizes = args.chunk_sizes or ([1000] if args.quick else [1000, 5000])
    windows = args.windows or (200 if args.quick else 1000)
    started = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)

    max_reference = 10_000 if args.quick else 0  # NannyML's references: 50,000 and 60,000
    reuse = args.reuse_peer and (OUT / "nannyml.json").exists()
    if not reuse:  # the data NannyML ran on stay as they are
        write_simulations(max_reference or 20_000, 20_000 if args.quick else SIM_ROWS, args.seed)
    peer_runs: dict[tuple[str, int], Any] = {}
    if reuse:
        found = json.loads((OUT / "nannyml.json").read_text())
        peer_runs = {(r["dataset"], r["chunk_size"]): r for r in found["runs"]}
    elif not args.no_peer or not (DATA / "car_loan.json").exists():
        try:
            peer_runs = run_peer(args.no_peer, max_reference, sizes, args.repeat)
        except (OSError, subprocess.CalledProcessError, PeerFailed) as error:
            print(f"NannyML side unavailable ({error}): Driftline's side alone", flush=True)

    ours_ok: str | None = None
    try:
        import detectors.estimation  # noqa: F401
    except ImportError as error:
        ours_ok = f"detectors.estimation is not on this branch ({error})"
    present = [n for n in (*NANNYML_DATASETS, *SIM_DATASETS) if (DATA / f"{n}.json").exists()]
    timer: PeerTimer | None = None
    if peer_runs and ours_ok is None and not args.separate_timing:
        try:
            timer = PeerTimer(peer_python())
        except OSError as error:
            print(f"NannyML timer unavailable ({error}): each side timed on its own", flush=True)
    try:
        lines, summary = compare(present, peer_runs, sizes, ours_ok, args.repeat, timer)
    finally:
        if timer is not None:
            timer.close()
    print()
    print("estimated vs realised, per chunk: mean absolute error (MAE); time per analysis chunk")
    if timer is not None:
        print(
            f"(times: {args.repeat} rounds of a NannyML pass over the chunks next to one of "
            "ours, each figure the median of the rounds, NML/ours the median of their ratios)"
        )
    for line in lines:
        print(line)
    print(
        "band: the share of chunks whose realised value lies in the side's band (ours 95 %; "
        "NannyML's is +-3 sampling errors)"
    )
    if ours_ok is None:
        print()
        print(f"false alarms of estimated_drop_test(...).is_drift(0.05), {windows:,} windows:")
        for line in false_alarms(windows, 1000, args.seed):
            print(line, flush=True)
        print("time to fire on the analyses, chunks of 1,000:")
        for line in time_to_fire(summary, 1000):
            print(line)
    else:
        print(f"\nours: {ours_ok}; the false-alarm check needs it")
    (OUT / "summary.json").write_text(json.dumps(summary, default=_json_default, indent=1))
    print(
        f"\n{time.perf_counter() - started:.0f} s; results in "
        f"{OUT.relative_to(ROOT)}/ (nannyml.json, summary.json, data/)"
    )


if __name__ == "__main__":
    main()
