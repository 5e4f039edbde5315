"""The SliceLine side of `make bench-slices`; it runs in its own virtualenv.

``bench/slices.py`` creates ``.bench-venvs/sliceline`` (sliceline 0.3.0, the reference
implementation of SliceLine in Python, which needs scikit-learn) and runs this script there.
It imports only sliceline, numpy and the standard library, never the project.

    run INPUT OUTPUT   INPUT is an ``.npz`` of ``codes`` (rows x features, the binned data
                       the bench gave Driftline's side too: a column number per row and
                       feature) and ``errors``; OUTPUT gets the top slices (a column number per
                       feature, or null where the slice has no predicate), their statistics,
                       the fit time, or the error that stopped it (out of memory, say: the
                       address space is capped with ``--memory-gib``).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def run(args: argparse.Namespace) -> dict[str, Any]:
    warnings.simplefilter("ignore")  # sliceline warns that numba is missing
    from sliceline.slicefinder import Slicefinder

    data = np.load(args.input)
    codes, errors = data["codes"], data["errors"]
    finder = Slicefinder(
        alpha=args.alpha, k=args.k, max_l=args.max_level, min_sup=args.min_sup, verbose=False
    )
    began = time.perf_counter()
    try:
        finder.fit(codes, errors)
    except MemoryError:
        return {"error": "out of memory", "seconds": time.perf_counter() - began}
    seconds = time.perf_counter() - began
    slices = [
        [None if value is None else int(value) for value in row] for row in finder.top_slices_
    ]
    return {"seconds": seconds, "slices": slices, "statistics": finder.top_slices_statistics_}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("command", choices=["run"])
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--alpha", type=float, default=0.95)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--max-level", type=int, default=3)
    parser.add_argument("--min-sup", type=int, default=30)
    parser.add_argument("--memory-gib", type=float, default=6.0)
    args = parser.parse_args()
    limit = int(args.memory_gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        found = run(args)
    except Exception as error:  # reported to the bench, which prints it
        found = {"error": f"{type(error).__name__}: {error}"}
        traceback.print_exc()
    args.output.write_text(json.dumps(found))
    print(f"  sliceline {args.input.name}: {found.get('error') or 'ok'}", file=sys.stderr)


if __name__ == "__main__":
    main()
