"""The NannyML side of `make bench-estimation`; it runs in its own virtualenv.

``bench/estimation.py`` creates ``.bench-venvs/nannyml`` (nannyml 0.13.1 pins pandas < 3 and
needs statsmodels, which clash with the project's own environment) and runs this script there.
It imports only nannyml, pandas, numpy and the standard library, never the project.

    export  write NannyML's three synthetic data sets (binary car loan, multi-class credit
            card, car price regression) in the bench's export format: for each data set
            ``<name>_reference.parquet`` and ``<name>_analysis.parquet`` (features,
            ``y_pred_proba`` or ``y_pred_proba_<class>``, ``y_pred``, ``y_true``; the analysis
            targets joined back on) and ``<name>.json`` (task, features, classes).
    run     for every data set in the export folder and every chunk size: fit NannyML's CBPE
            (roc_auc, f1, accuracy; macro averages for multi-class) or DLE (mae, rmse) on the
            reference, estimate the analysis (its targets dropped), and write, per chunk, the
            bounds, NannyML's estimate and confidence band, and the realised value from the
            targets; fit time and estimation time per chunk (the whole estimate / chunks).
    serve   time estimates on request, for the bench's interleaved timing: each line read
            from stdin, ``{"dataset": ..., "chunk_size": ...}``, fits that estimator (once)
            and times one estimate of the whole analysis; the reply, a line on stdout, is
            ``REPLY{"per_chunk_s": ..., "chunks": ...}``. An empty line or end of input stops
            it.

The data never leaves ``bench-results/``: nothing NannyML ships is kept in the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CLASSIFICATION_METRICS = ["roc_auc", "f1", "accuracy"]
REGRESSION_METRICS = ["mae", "rmse"]
MAX_REFERENCE = 0  # export: keep this many reference rows (0: all)
REPLY = "nannyml-timing "  # serve: the prefix of its replies among whatever else is printed


def _export(
    name: str, reference: pd.DataFrame, analysis: pd.DataFrame, meta: dict[str, Any], out: Path
) -> None:
    columns = [*meta["features"], *meta["proba"], "y_pred", "y_true"]
    if MAX_REFERENCE:  # --quick: the first rows of the reference only, for both sides
        reference = reference.iloc[:MAX_REFERENCE]
    reference[columns].reset_index(drop=True).to_parquet(out / f"{name}_reference.parquet")
    analysis[columns].reset_index(drop=True).to_parquet(out / f"{name}_analysis.parquet")
    meta = {
        **meta,
        "source": "nannyml " + _nannyml_version(),
        "rows": [len(reference), len(analysis)],
    }
    (out / f"{name}.json").write_text(json.dumps(meta, indent=1))


def _nannyml_version() -> str:
    import nannyml

    return str(nannyml.__version__)


def export(out: Path) -> None:
    import nannyml as nml

    out.mkdir(parents=True, exist_ok=True)
    # binary: will the car loan be repaid; the positive class (1) is "repaid"
    reference, analysis, targets = nml.load_synthetic_car_loan_dataset()
    analysis = analysis.merge(targets, on="id")
    features = [
        "car_value",
        "salary_range",
        "debt_to_income_ratio",
        "loan_length",
        "repaid_loan_on_prev_car",
        "size_of_downpayment",
        "driver_tenure",
    ]
    # NannyML's y_pred is not y_pred_proba >= 0.5 on 1.8 % of the reference (scores of 0.50 to
    # 0.64 predicted 0); Driftline's CBPE takes no y_pred but a threshold, so both sides score
    # the thresholded prediction and the realised values are of the same predictions
    agreement = float(np.mean((reference["y_pred_proba"] >= 0.5) == reference["y_pred"]))
    for frame in (reference, analysis):
        frame["y_true"] = frame["repaid"].astype(int)
        frame["y_pred"] = (frame["y_pred_proba"] >= 0.5).astype(int)
    _export(
        "car_loan",
        reference,
        analysis,
        {
            "task": "binary",
            "features": features,
            "proba": ["y_pred_proba"],
            "classes": ["0", "1"],
            "shipped_y_pred_agreement": agreement,
        },
        out,
    )

    reference, analysis, targets = nml.load_synthetic_multiclass_classification_dataset()
    analysis = analysis.merge(targets, on="id")
    classes = ["prepaid_card", "highstreet_card", "upmarket_card"]
    features = [
        "acq_channel",
        "app_behavioral_score",
        "requested_credit_limit",
        "app_channel",
        "credit_bureau_score",
        "stated_income",
        "is_customer",
    ]
    _export(
        "credit_card",
        reference,
        analysis,
        {
            "task": "multiclass",
            "features": features,
            "proba": [f"y_pred_proba_{c}" for c in classes],
            "classes": classes,
        },
        out,
    )

    reference, analysis, targets = nml.load_synthetic_car_price_dataset()
    analysis = analysis.merge(targets, on="id")
    features = [
        "car_age",
        "km_driven",
        "price_new",
        "accident_count",
        "door_count",
        "fuel",
        "transmission",
    ]
    _export(
        "car_price",
        reference,
        analysis,
        {"task": "regression", "features": features, "proba": [], "classes": []},
        out,
    )


# ---- realised values from the targets (plain numpy) ---------------------------------------


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    n1 = int(positive.sum())
    n0 = positive.size - n1
    if n0 == 0 or n1 == 0:
        return float("nan")
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n0 * n1))


def _f1(predicted: np.ndarray, actual: np.ndarray) -> float:
    tp = float(np.sum(predicted & actual))
    denominator = float(predicted.sum() + actual.sum())
    return 2 * tp / denominator if denominator else 0.0


def realised(meta: dict[str, Any], chunk: pd.DataFrame) -> dict[str, float]:
    if meta["task"] == "regression":
        error = chunk["y_pred"].to_numpy(float) - chunk["y_true"].to_numpy(float)
        return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt(np.mean(error**2)))}
    truth = chunk["y_true"].astype(str).to_numpy()
    predicted = chunk["y_pred"].astype(str).to_numpy()
    values = {"accuracy": float(np.mean(truth == predicted))}
    if meta["task"] == "binary":
        actual = truth == "1"
        values["f1"] = _f1(predicted == "1", actual)
        values["roc_auc"] = _auc(chunk["y_pred_proba"].to_numpy(float), actual)
    else:
        classes = meta["classes"]
        values["f1"] = float(np.mean([_f1(predicted == c, truth == c) for c in classes]))
        values["roc_auc"] = float(
            np.mean([_auc(chunk[f"y_pred_proba_{c}"].to_numpy(float), truth == c) for c in classes])
        )
    return values


# ---- NannyML's estimates -------------------------------------------------------------------


def _estimator(meta: dict[str, Any], chunk_size: int) -> Any:
    import nannyml as nml
    from nannyml.chunk import SizeBasedChunker

    chunker = SizeBasedChunker(chunk_size, incomplete="drop")
    if meta["task"] == "regression":
        return nml.DLE(
            feature_column_names=meta["features"],
            y_pred="y_pred",
            y_true="y_true",
            metrics=REGRESSION_METRICS,
            chunker=chunker,
        )
    if meta["task"] == "binary":
        return nml.CBPE(
            y_pred_proba="y_pred_proba",
            y_pred="y_pred",
            y_true="y_true",
            problem_type="classification_binary",
            metrics=CLASSIFICATION_METRICS,
            chunker=chunker,
        )
    # multi-class: NannyML 0.13 averages every metric over the classes (macro)
    proba = {c: f"y_pred_proba_{c}" for c in meta["classes"]}
    return nml.CBPE(
        y_pred_proba=proba,
        y_pred="y_pred",
        y_true="y_true",
        problem_type="classification_multiclass",
        metrics=CLASSIFICATION_METRICS,
        chunker=chunker,
    )


def _load(folder: Path, name: str, meta: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    reference = pd.read_parquet(folder / f"{name}_reference.parquet")
    analysis = pd.read_parquet(folder / f"{name}_analysis.parquet")
    for frame in (reference, analysis):
        if meta["task"] == "binary":
            frame["y_true"] = frame["y_true"].astype(int)
            frame["y_pred"] = frame["y_pred"].astype(int)
        for column in meta["features"]:
            if frame[column].dtype == object:
                frame[column] = frame[column].astype("category")
    return reference, analysis


def run_one(folder: Path, name: str, chunk_size: int, repeat: int) -> dict[str, Any]:
    meta = json.loads((folder / f"{name}.json").read_text())
    reference, analysis = _load(folder, name, meta)
    metrics = REGRESSION_METRICS if meta["task"] == "regression" else CLASSIFICATION_METRICS
    estimator = _estimator(meta, chunk_size)
    began = time.perf_counter()
    estimator.fit(reference)
    fit_s = time.perf_counter() - began
    unlabelled = analysis.drop(columns=["y_true"])
    times = []
    for _ in range(repeat):  # the median of ``repeat`` runs: the machine may be shared
        began = time.perf_counter()
        result = estimator.estimate(unlabelled)
        times.append(time.perf_counter() - began)
    estimate_s = statistics.median(times)
    frame = result.filter(period="analysis").to_df()
    chunks = []
    for _, row in frame.iterrows():
        start, end = int(row[("chunk", "start_index")]), int(row[("chunk", "end_index")])
        chunk = analysis.iloc[start : end + 1]
        truth = realised(meta, chunk)
        chunks.append(
            {
                "start": start,
                "end": end + 1,
                "estimated": {m: float(row[(m, "value")]) for m in metrics},
                "lower": {m: _float(row.get((m, "lower_confidence_boundary"))) for m in metrics},
                "upper": {m: _float(row.get((m, "upper_confidence_boundary"))) for m in metrics},
                "realised": {m: truth[m] for m in metrics},
            }
        )
    return {
        "dataset": name,
        "task": meta["task"],
        "chunk_size": chunk_size,
        "method": "DLE" if meta["task"] == "regression" else "CBPE",
        "fit_s": fit_s,
        "estimate_s": estimate_s,
        "per_chunk_s": estimate_s / max(1, len(chunks)),
        "chunks": chunks,
    }


def serve(folder: Path) -> None:
    fitted: dict[tuple[str, int], tuple[Any, pd.DataFrame]] = {}
    for line in sys.stdin:
        if not line.strip():
            break
        request = json.loads(line)
        key = (str(request["dataset"]), int(request["chunk_size"]))
        if key not in fitted:
            meta = json.loads((folder / f"{key[0]}.json").read_text())
            reference, analysis = _load(folder, key[0], meta)
            estimator = _estimator(meta, key[1])
            estimator.fit(reference)
            fitted[key] = (estimator, analysis.drop(columns=["y_true"]))
        estimator, unlabelled = fitted[key]
        began = time.perf_counter()
        estimator.estimate(unlabelled)
        elapsed = time.perf_counter() - began
        chunks = len(unlabelled) // key[1]
        reply = {"per_chunk_s": elapsed / max(1, chunks), "chunks": chunks}
        sys.stdout.write(REPLY + json.dumps(reply) + "\n")  # NannyML may print too
        sys.stdout.flush()


def _float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_export = sub.add_parser("export")
    p_export.add_argument("folder", type=Path)
    p_export.add_argument("--max-reference", type=int, default=0)
    p_run = sub.add_parser("run")
    p_run.add_argument("folder", type=Path)
    p_run.add_argument("output", type=Path)
    p_run.add_argument("--datasets", nargs="+", required=True)
    p_run.add_argument("--chunk-sizes", type=int, nargs="+", default=[1000, 5000])
    p_run.add_argument("--repeat", type=int, default=3, help="timed estimates (median)")
    p_serve = sub.add_parser("serve")
    p_serve.add_argument("folder", type=Path)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # no network from the bench
    if args.command == "export":
        global MAX_REFERENCE
        MAX_REFERENCE = args.max_reference
        export(args.folder)
        return
    if args.command == "serve":
        serve(args.folder)
        return
    runs = []
    for name in args.datasets:
        for size in args.chunk_sizes:
            runs.append(run_one(args.folder, name, size, args.repeat))
            last = runs[-1]
            print(
                f"  nannyml {name} chunk {size}: fit {last['fit_s']:.2f} s, "
                f"{1e3 * last['per_chunk_s']:.1f} ms a chunk",
                file=sys.stderr,
                flush=True,
            )
    args.output.write_text(json.dumps({"nannyml": _nannyml_version(), "runs": runs}))


if __name__ == "__main__":
    main()
