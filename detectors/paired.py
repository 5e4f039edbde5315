"""A paired test of two models scored on the same examples: does ``a`` err more than ``b``?

Both models' per-example errors are given in the same order (one row, one example).
Classification errors (``binary``: 1 misclassified, 0 right) get McNemar's exact test: of the
examples exactly one model gets wrong, is ``a`` the one more often than a fair coin would say
(a binomial test on the discordant pairs)? Regression errors (absolute errors) get the Wilcoxon
signed-rank test on the paired differences ``a - b``. The retrainer's champion / challenger
check (``retrainer/evaluate.py``) and the shadow-mode quality pass (``streams/quality.py``)
both use it.

``alternative`` says which way counts: ``"greater"``: ``a`` errs more than ``b`` (one-sided);
``"less"``: ``a`` errs less; ``"two-sided"``: either. A small p-value is evidence of that
direction. Identical errors (no discordant pair, no non-zero difference) give p = 1.

>>> import numpy as np
>>> b = np.zeros(200)                 # always right
>>> a = (np.arange(200) < 40) * 1.0   # wrong on 40 examples, right where b is too
>>> p_more_errors(a, b, binary=True) < 1e-11, p_more_errors(a, b, binary=True, alternative="less")
(True, 1.0)
>>> p_more_errors(b, b, binary=True, alternative="two-sided")
1.0
>>> p_more_errors(a + 0.5, a, binary=False) < 1e-10  # every absolute error half a unit larger
True
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

Alternative = Literal["greater", "less", "two-sided"]
FloatArray = npt.NDArray[np.float64]


def p_more_errors(
    a: FloatArray, b: FloatArray, *, binary: bool, alternative: Alternative = "greater"
) -> float:
    """The paired p-value that ``a``'s errors exceed ``b``'s (see ``alternative``);
    ``binary``: 0/1 classification errors (McNemar), else absolute errors (Wilcoxon)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(
            f"paired errors need one value per example on both sides, got {a.shape} and "
            f"{b.shape}: score both models on the same examples"
        )
    if binary:
        a_only = int(np.sum((a == 1.0) & (b == 0.0)))  # examples only a gets wrong
        b_only = int(np.sum((a == 0.0) & (b == 1.0)))
        if a_only + b_only == 0:
            return 1.0
        return float(stats.binomtest(a_only, a_only + b_only, alternative=alternative).pvalue)
    gaps = a - b
    if not np.any(gaps):
        return 1.0
    return float(stats.wilcoxon(gaps, alternative=alternative).pvalue)
