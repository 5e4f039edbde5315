"""`make bench-slices`: slice discovery, Driftline's ``find_slices`` against SliceLine's
reference implementation in Python (sliceline 0.3.0), on labelled rows with planted slices.

sliceline runs in its own virtualenv, ``.bench-venvs/sliceline``, created here when missing
(it needs scikit-learn, never a dependency of the project); there ``bench/sliceline_side.py``
runs it on the data this script writes, its address space capped at ``--memory-gib``.

The data (seeded): rows x features, half numeric (normal, log-normal, uniform; two with 3 %
missing), half categorical (2 to 8 values, skewed; one with 2 % missing), and 0/1 errors, the
rows a classifier got wrong: 10 % of the rows, and in one planted slice ``lift`` (1.5 to 3)
times as many. The planted slice is a conjunction of 1, 2 or 3 predicates (the seed's turn)
on the binned data both sides see (``detectors.slices.encode_features``: numeric features in 5
quantile bins), drawn until its support is 1 to 10 %. Driftline's side gets the raw columns
(it bins them itself, inside its time), sliceline the binned column numbers; both k = 5,
3 levels, SliceLine's alpha 0.95, the same minimum support (1 % of the rows, at least 30).

Reported per seed and side: recall@5 (the planted slice, exactly, among the 5 returned),
false slices among them (fewer than half their rows in the planted slice), the time (ours:
``find_slices`` from the columns; sliceline: ``fit`` on the binned matrix); then per data
size the totals and ratios, and, with nothing planted, the share of seeds where ours returns
a significant slice (target: none in >= 95 % of them). Targets: recall@5 >= sliceline's, time
<= sliceline's. ``--quick``: 20,000 rows x 10 features, 3 seeds, 10 seeds of noise. Writes only
under ``bench-results/slices/``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import peers
from detectors.slices import MIN_SLICE_ROWS, EncodedFeatures, encode_features, find_slices

ROOT = Path(__file__).resolve().parent.parent
PEER = ["sliceline==0.3.0"]
OUT = ROOT / "bench-results" / "slices"
K, LEVELS, ALPHA, MIN_SUPPORT, BINS = 5, 3, 0.95, 0.01, 5
BASE_RATE = 0.1
BoolArray = npt.NDArray[np.bool_]


def peer_python() -> Path:
    """The sliceline virtualenv's interpreter (``bench/peers.py``)."""
    return peers.peer_python("sliceline", PEER)


# ---- the data --------------------------------------------------------------------------


def features(rng: np.random.Generator, n: int, m: int) -> dict[str, list[object]]:
    columns: dict[str, list[object]] = {}
    for j in range(m):
        if j % 2 == 0:
            kind = (j // 2) % 3
            x = (
                rng.normal(size=n)
                if kind == 0
                else rng.lognormal(size=n)
                if kind == 1
                else rng.uniform(0, 100, n)
            )
            values: list[object] = x.round(3).tolist()
            if j in (2, 8):
                values = [
                    None if u < 0.03 else v for u, v in zip(rng.random(n), values, strict=True)
                ]
            columns[f"x{j}"] = values
        else:
            card = 2 + (j // 2) % 7
            p = rng.dirichlet(np.full(card, 2.0))
            cats = rng.choice([f"v{i}" for i in range(card)], n, p=p).tolist()
            if j == 5:
                cats = [None if u < 0.02 else v for u, v in zip(rng.random(n), cats, strict=True)]
            columns[f"c{j}"] = cats
    return columns


def plant(
    rng: np.random.Generator, encoded: EncodedFeatures, level: int
) -> tuple[tuple[int, ...], BoolArray]:
    """A conjunction of ``level`` one-hot columns of distinct features, 1 to 10 % support."""
    m = encoded.codes.shape[1]
    for _ in range(10_000):
        chosen = rng.choice(m, level, replace=False)
        columns = tuple(sorted(int(rng.choice(encoded.codes[:, f])) for f in chosen))
        if any(encoded.conditions[c] == "is missing" for c in columns):
            continue
        rows = rows_of(encoded, columns)
        if 0.01 <= rows.mean() <= 0.10:
            return columns, rows
    raise RuntimeError(f"no planted slice of {level} predicates with 1-10 % support")


def rows_of(encoded: EncodedFeatures, columns: Sequence[int]) -> BoolArray:
    rows = np.ones(encoded.n_rows, dtype=np.bool_)
    for c in columns:
        rows &= encoded.codes[:, int(encoded.column_feature[c])] == c
    return rows


@dataclass
class Case:
    name: str
    seed: int
    level: int  # 0: nothing planted
    features: dict[str, list[object]]
    encoded: EncodedFeatures
    errors: npt.NDArray[np.float64]
    planted: tuple[int, ...]
    rows: BoolArray
    lift: float


def make_case(name: str, n: int, m: int, seed: int, level: int) -> Case:
    rng = np.random.default_rng([seed, n, m])
    columns = features(rng, n, m)
    encoded = encode_features(columns, bins=BINS)
    planted: tuple[int, ...] = ()
    rows = np.zeros(n, dtype=np.bool_)
    lift = 1.0
    if level:
        planted, rows = plant(rng, encoded, level)
        lift = float(rng.uniform(1.5, 3.0))
    wrong = rng.random(n) < np.where(rows, BASE_RATE * lift, BASE_RATE)
    return Case(name, seed, level, columns, encoded, wrong.astype(np.float64), planted, rows, lift)


# ---- the two sides ---------------------------------------------------------------------


@dataclass
class Outcome:
    seconds: float | None
    slices: list[tuple[int, ...]]
    error: str = ""


def run_ours(case: Case) -> Outcome:
    began = time.perf_counter()
    found = find_slices(
        case.features, case.errors.tolist(), k=K, max_level=LEVELS, min_support=MIN_SUPPORT,
        alpha_score=ALPHA, bins=BINS,
    )  # fmt: skip
    seconds = time.perf_counter() - began
    index = {case.encoded.predicate(c): c for c in range(case.encoded.n_columns)}
    return Outcome(seconds, [tuple(sorted(index[p] for p in s.predicates)) for s in found])


def run_peer(python: Path, case: Case, timeout: float, memory_gib: float) -> Outcome:
    data = OUT / "data" / f"{case.name}_{case.seed}.npz"
    data.parent.mkdir(parents=True, exist_ok=True)
    np.savez(data, codes=case.encoded.codes, errors=case.errors)
    result = OUT / f"sliceline_{case.name}_{case.seed}.json"
    sigma = max(MIN_SLICE_ROWS, math.ceil(MIN_SUPPORT * case.encoded.n_rows))
    command = [
        str(python), str(ROOT / "bench" / "sliceline_side.py"), "run", str(data), str(result),
        "--alpha", str(ALPHA), "--k", str(K), "--max-level", str(LEVELS),
        "--min-sup", str(sigma), "--memory-gib", str(memory_gib),
    ]  # fmt: skip
    began = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Outcome(None, [], f"no result in {timeout:.0f} s")
    if done.returncode != 0 or not result.exists():
        sys.stderr.write(done.stderr[-2000:])
        return Outcome(None, [], f"failed ({done.returncode})")
    found = json.loads(result.read_text())
    if "error" in found:
        spent = found.get("seconds", time.perf_counter() - began)
        return Outcome(None, [], f"{found['error']} after {spent:.0f} s")
    slices = [tuple(sorted(v for v in row if v is not None)) for row in found["slices"]]
    return Outcome(float(found["seconds"]), slices)


def judge(case: Case, outcome: Outcome) -> tuple[int, int]:
    """(recall@5 of the planted slice: 0 or 1, false slices among the returned)."""
    top = outcome.slices[:K]
    recall = int(case.planted in top)
    false = 0
    for columns in top:
        rows = rows_of(case.encoded, columns)
        if (rows & case.rows).sum() < 0.5 * rows.sum():
            false += 1
    return recall, false


# ---- main ------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 x 10, 3 seeds, 10 noise")
    parser.add_argument("--seeds", type=int, help="planted seeds per data size")
    parser.add_argument("--noise-seeds", type=int, help="seeds with nothing planted")
    parser.add_argument("--timeout", type=float, default=300.0, help="sliceline, per run (s)")
    parser.add_argument("--memory-gib", type=float, default=6.0, help="sliceline's cap")
    parser.add_argument("--no-peer", action="store_true", help="skip sliceline")
    args = parser.parse_args()
    sizes = [("20k x 10", 20_000, 10)] if args.quick else [
        ("100k x 20", 100_000, 20), ("20k x 10", 20_000, 10),
    ]  # fmt: skip
    seeds = args.seeds or (3 if args.quick else 6)
    noise = args.noise_seeds or (10 if args.quick else 20)
    started = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    python: Path | None = None
    if not args.no_peer:
        try:
            python = peer_python()
        except (OSError, subprocess.CalledProcessError) as error:
            print(f"sliceline unavailable ({error}): Driftline's side alone", flush=True)

    header = (
        f"{'data':10} {'seed':>4} {'lvl':>3} {'support':>7} {'lift':>4} | {'recall@5':>8} "
        f"{'SL':>3} | {'false@5':>7} {'SL':>3} | {'s ours':>7} {'s SL':>7} {'SL/ours':>7}  note"
    )
    lines = [header, "-" * len(header)]
    summary: dict[str, Any] = {"runs": [], "sizes": {}, "noise": {}}
    totals: list[str] = []
    for name, n, m in sizes:
        rows: list[dict[str, Any]] = []
        for seed in range(seeds):
            level = 1 + seed % 3
            case = make_case(name.replace(" ", ""), n, m, seed, level)
            ours = run_ours(case)
            peer = run_peer(python, case, args.timeout, args.memory_gib) if python else None
            r_ours, f_ours = judge(case, ours)
            r_peer, f_peer = judge(case, peer) if peer and peer.seconds is not None else (0, 0)
            ratio = (
                peer.seconds / ours.seconds
                if peer and peer.seconds is not None and ours.seconds
                else None
            )
            note = peer.error if peer else "sliceline skipped"
            row = {
                "data": name, "seed": seed, "level": level, "support": float(case.rows.mean()),
                "lift": case.lift, "recall_ours": r_ours, "recall_sliceline": r_peer,
                "false_ours": f_ours, "false_sliceline": f_peer, "seconds_ours": ours.seconds,
                "seconds_sliceline": peer.seconds if peer else None, "note": note,
                "found_ours": len(ours.slices), "found_sliceline": len(peer.slices) if peer else 0,
            }  # fmt: skip
            rows.append(row)
            lines.append(
                f"{name:10} {seed:>4} {level:>3} {100 * case.rows.mean():>6.1f}% "
                f"{case.lift:>4.1f} | {r_ours:>8} {r_peer if peer else '-':>3} | "
                f"{f_ours:>7} {f_peer if peer else '-':>3} | {_s(ours.seconds):>7} "
                f"{_s(peer.seconds if peer else None):>7} "
                f"{'-' if ratio is None else f'{ratio:.1f}x':>7}  {note}"
            )
            print(lines[-1], flush=True)
        summary["runs"] += rows
        recall_o = sum(r["recall_ours"] for r in rows)
        recall_p = sum(r["recall_sliceline"] for r in rows)
        false_o = sum(r["false_ours"] for r in rows)
        false_p = sum(r["false_sliceline"] for r in rows)
        t_o = statistics.median(r["seconds_ours"] for r in rows)
        finished = [r["seconds_sliceline"] for r in rows if r["seconds_sliceline"] is not None]
        t_p = statistics.median(finished) if finished else None
        compared = python is not None
        totals.append(
            f"{name}: recall@5 ours {recall_o}/{len(rows)}, sliceline "
            f"{recall_p if compared else '-'}/{len(rows)} (target ours >= sliceline: "
            f"{'yes' if compared and recall_o >= recall_p else 'NO' if compared else '-'}); "
            f"false slices in the top 5: ours {false_o}, sliceline "
            f"{false_p if compared else '-'}; median time ours {t_o:.2f} s, sliceline "
            + (
                f"{t_p:.2f} s ({t_p / t_o:.1f}x; target ours <= sliceline: "
                f"{'yes' if t_o <= t_p else 'NO'}), sliceline finished {len(finished)} of "
                f"{len(rows)}"
                if t_p is not None
                else f"- (finished 0 of {len(rows)}: {rows[0]['note'] or 'skipped'})"
            )
        )
        summary["sizes"][name] = {
            "recall_ours": recall_o, "recall_sliceline": recall_p, "false_ours": false_o,
            "false_sliceline": false_p, "median_seconds_ours": t_o,
            "median_seconds_sliceline": t_p, "sliceline_finished": len(finished),
            "seeds": len(rows),
        }  # fmt: skip
    name, n, m = sizes[0]
    fired = []
    times = []
    for seed in range(noise):
        case = make_case(name.replace(" ", "") + "-noise", n, m, 1000 + seed, 0)
        ours = run_ours(case)
        times.append(ours.seconds or 0.0)
        if ours.slices:
            fired.append(seed)
    clean = 1.0 - len(fired) / noise
    noise_line = (
        f"nothing planted ({name}, {noise} seeds): ours returned a significant slice in "
        f"{len(fired)} ({', '.join(map(str, fired)) or 'none'}); clean in {100 * clean:.0f} % "
        f"(target >= 95 %: {'yes' if clean >= 0.95 else 'NO'}); median "
        f"{statistics.median(times):.2f} s"
    )
    summary["noise"] = {"data": name, "seeds": noise, "fired": fired, "clean_share": clean}
    print()
    for line in lines:
        print(line)
    print()
    for line in totals:
        print(line)
    print(noise_line)
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\n{time.perf_counter() - started:.0f} s; results in {OUT.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
