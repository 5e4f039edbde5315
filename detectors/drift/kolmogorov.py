"""The two-sided Kolmogorov-Smirnov tail ``P(D_n > x)`` for many (n, x) pairs at once.

``scipy.stats._ksstats.kolmogn(n, x, cdf=False)`` is the tail ``ks_2samp``'s asymptotic p-value
takes (at the rounded effective size), but it is a Python loop over its elements (``np.nditer``
calling ``_kolmogn`` once per pair), about 0.2 ms a pair. This is the same function with its
regimes (Simard & L'Ecuyer 2011, as scipy chooses them) evaluated on arrays:

- ``x >= 1``: 0; ``x <= 0`` or ``n x <= 1/2``: 1;
- ``n x^2 >= 370``: 0; ``n x^2 >= 2.2`` or ``x >= 1/2``: ``2 smirnov(n, x)``. scipy's ``smirnov``
  is a ufunc, but it sums the Birnbaum-Tingey series term by term in double-double, ~1 ms a
  value at n = 1,450 (these are the drifted features, so a window meets many); here the same
  series is summed in log space for every value of one n at once (``_smirnov_sf``);
- ``n x^1.5 > 1.4`` and ``n x^2 < 2.2``: 1 minus the Pelz-Good series, written out here with
  the same operations in the same order as scipy's ``_kolmogn_PelzGood``, element-wise;
- the rest (``n <= 140``, ``n x <= 1`` or ``n x >= n - 1`` (Ruben-Gambino), ``n x^1.5 <= 1.4``
  (the Durbin matrix, p above 0.999 at the sizes windows have), and Smirnov sums past
  n = 10,000): scipy's own scalar code, element by element. Those are rare at window sizes,
  and only they pay.

So every element takes the formula scipy takes for it (no regime moves); the values agree with
``kolmogn`` to float rounding: the Pelz-Good terms to the last bit or so (vectorised ``exp``
and ``power``, sums added one by one instead of pairwise), the Smirnov sums to ~n 1e-16
relative (each term's logarithm is ~n in size; ~1e-13 at n = 1,450, against scipy's
double-double). tests/detectors/drift/test_batch.py checks 1e-12 relative over every regime.

>>> import numpy as np
>>> from scipy.stats._ksstats import kolmogn
>>> n, x = np.array([1450, 1450, 20]), np.array([0.03, 0.06, 0.2])
>>> bool(np.allclose(kolmogorov_sf(n, x), kolmogn(n, x, cdf=False), rtol=1e-12, atol=0))
True
"""

from __future__ import annotations

import functools
import math

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy.stats._ksstats import kolmogn

FloatArray = npt.NDArray[np.float64]

_SQRT2PI = np.sqrt(2 * np.pi)
_SQRT3 = np.sqrt(3)
_PI_SQUARED = np.pi**2
_PI_FOUR = np.pi**4
_PI_SIX = np.pi**6
_MIN_LOG = -708
_CEPHES_MINLOG = -7.08396418532264106224e2  # log(2**-1022), scipy's smirnov underflow bound
_SUMMED_MAX_N = 10_000  # above this, scipy's own smirnov (the log-space sum loses digits)
_SUM_CELLS = 1 << 21  # terms per block of the vectorised sum (16 MiB of float64)


def kolmogorov_sf(n: npt.ArrayLike, x: npt.ArrayLike) -> FloatArray:
    """``kolmogn(n, x, cdf=False)`` element-wise: ``n`` positive integers (as floats or
    ints), ``x`` in any range; the result is clipped to [0, 1] as scipy clips it."""
    n_arr, x_arr = np.broadcast_arrays(np.asarray(n, dtype=np.float64), np.asarray(x, np.float64))
    n_flat, x_flat = n_arr.ravel(), x_arr.ravel()
    out = np.full(n_flat.shape, np.nan)
    t = n_flat * x_flat
    nx2 = t * x_flat
    out[(x_flat <= 0.0) | (t <= 0.5)] = 1.0
    out[x_flat >= 1.0] = 0.0
    todo = np.isnan(out)
    # Ruben-Gambino's two ends and the small sizes: scipy's scalar code, element by element
    scalar = todo & ((t <= 1.0) | (t >= n_flat - 1) | ((n_flat <= 140) & (x_flat < 0.5)))
    todo &= ~scalar
    out[todo & (nx2 >= 370.0) & (x_flat < 0.5)] = 0.0
    smirnov = todo & ((x_flat >= 0.5) | ((nx2 >= 2.2) & (nx2 < 370.0)))
    if smirnov.any():
        out[smirnov] = np.clip(2 * _smirnov_sf(n_flat[smirnov], x_flat[smirnov]), 0.0, 1.0)
    todo &= ~smirnov & ~(nx2 >= 370.0)
    durbin = todo & (n_flat <= 100000) & (n_flat * x_flat**1.5 <= 1.4)
    scalar |= durbin
    pelz_good = todo & ~durbin
    if pelz_good.any():
        cdf = _pelz_good_cdf(n_flat[pelz_good], x_flat[pelz_good])
        out[pelz_good] = np.clip(1.0 - cdf, 0.0, 1.0)
    for i in np.flatnonzero(scalar):
        out[i] = float(kolmogn(int(n_flat[i]), float(x_flat[i]), cdf=False))
    return out.reshape(n_arr.shape)


def _pelz_good_cdf(n: FloatArray, x: FloatArray) -> FloatArray:
    """scipy's ``_kolmogn_PelzGood(n, x, cdf=True)`` for arrays with 0 < x < 1, step by step."""
    z = np.sqrt(n) * x
    zsquared, zthree, zfour, zsix = z**2, z**3, z**4, z**6
    qlog = -_PI_SQUARED / 8 / zsquared
    tiny = qlog < _MIN_LOG  # z below ~0.0417: the CDF is 0
    q = np.exp(qlog)
    k1a = -zsquared
    k1b = _PI_SQUARED / 4
    k2a = 6 * zsix + 2 * zfour
    k2b = (2 * zfour - 5 * zsquared) * _PI_SQUARED / 4
    k2c = _PI_FOUR * (1 - 2 * zsquared) / 16
    k3d = _PI_SIX * (5 - 30 * zsquared) / 64
    k3c = _PI_FOUR * (-60 * zsquared + 212 * zfour) / 16
    k3b = _PI_SQUARED * (135 * zfour - 96 * zsix) / 4
    k3a = -30 * zsix - 90 * z**8
    maxk = np.ceil(16 * z / np.pi).astype(np.int64)
    top = int(maxk.max(initial=0))
    t0, t1, t2, t3 = (np.zeros_like(z) for _ in range(4))
    # Horner over odd integers, from each element's own maxk down to 1: an element whose maxk
    # is below k stays 0 (its coefficients times 0.0; times 1.0 leaves the others exact)
    for k in range(top, 0, -1):
        on = _on(k, maxk)
        m = 2 * k - 1
        msquared, mfour, msix = m**2, m**4, m**6
        qpower = np.power(q, 8 * k)
        t0 = t0 * qpower + on
        t1 = t1 * qpower + (k1a + k1b * msquared) * on
        t2 = t2 * qpower + (k2a + k2b * msquared + k2c * mfour) * on
        t3 = t3 * qpower + (k3a + k3b * msquared + k3c * mfour + k3d * msix) * on
    t0, t1 = t0 * q * _SQRT2PI / z, t1 * q * _SQRT2PI / (6 * zfour)
    t2, t3 = t2 * q * _SQRT2PI / (72 * z**7), t3 * q * _SQRT2PI / (6480 * z**10)
    q = np.exp(-_PI_SQUARED / 2 / zsquared)
    sqrt3z = _SQRT3 * z
    k2extra = np.zeros_like(z)
    k3extra = np.zeros_like(z)
    for k in range(top, 0, -1):  # scipy's order: maxk down to 1
        on = _on(k, maxk)
        ksquared = k**2
        kspi = np.pi * k
        qpwers = q**ksquared
        k2extra = k2extra + ksquared * qpwers * on
        k3extra = k3extra + (sqrt3z + kspi) * (sqrt3z - kspi) * ksquared * qpwers * on
    k2extra *= _PI_SQUARED * _SQRT2PI / (-36 * zthree)
    t2 = t2 + k2extra
    k3extra *= _PI_SQUARED * _SQRT2PI / (216 * zsix)
    t3 = t3 + k3extra
    powers = np.power(n * 1.0, np.arange(4)[:, None] / 2.0)
    total = ((t0 / powers[0] + t1 / powers[1]) + t2 / powers[2]) + t3 / powers[3]
    return np.where(tiny, 0.0, total)


def _on(k: int, maxk: npt.NDArray[np.int64]) -> FloatArray | float:
    """1.0 where the series of an element reaches k, else 0.0 (a plain 1.0 when all do)."""
    active = k <= maxk
    return 1.0 if active.all() else active.astype(np.float64)


def _smirnov_sf(n: FloatArray, x: FloatArray) -> FloatArray:
    """``scipy.special.smirnov(n, x)`` for 1 < n x < n - 1 (the range ``kolmogn`` gives it
    here): the Birnbaum-Tingey sum ``x sum_v C(n, v) (1 - x - v/n)^(n-v) (x + v/n)^(v-1)``
    over v from 0 while ``1 - x - v/n > 0``, which is the sum scipy evaluates (in
    double-double, one term at a time, ~1 ms at n = 1,450). Here each term is
    ``exp(log C + (n - v) log(1 - x - v/n) + (v - 1) log(x + v/n))`` with the log-binomials
    accumulated once per n, for every element of a group of equal n at once. The logs reach
    ~n in size, so a term carries ~n 1e-16 of relative rounding: ~1e-13 at n = 1,450; checked
    against scipy to 1e-12 up to n = 10,000 (above it, scipy's function itself is called)."""
    out = np.empty(n.shape)
    underflow = (-2.0 * n) * x * x < _CEPHES_MINLOG  # scipy's first exit: the sf is 0
    out[underflow] = 0.0
    large = ~underflow & (n > _SUMMED_MAX_N)
    if large.any():
        out[large] = special.smirnov(n[large].astype(np.int64), x[large])
    summed = ~underflow & ~large
    for size in np.unique(n[summed]):
        members = np.flatnonzero(summed & (n == size))
        v = np.arange(int(size) + 1, dtype=np.float64)
        log_binomial = _log_binomials(int(size))
        rows = max(1, _SUM_CELLS // v.size)
        for start in range(0, members.size, rows):
            block = members[start : start + rows]
            xb = x[block][:, None]
            above = (size - v) / size - xb  # 1 - x - v/n
            at = v / size + xb  # x + v/n
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = log_binomial + (size - v) * np.log(above) + (v - 1) * np.log(at)
                terms = np.where(above > 0, np.exp(logs), 0.0)
            out[block] = x[block] * terms.sum(axis=1)
    return out


@functools.lru_cache(maxsize=64)
def _log_binomials(n: int) -> FloatArray:
    """``log C(n, v)`` for v = 0..n, each the correctly rounded log of the exact integer (a
    running sum of logs would drift by ~1e-12 at n = 1,450); ~1 ms at that n, once per n."""
    logs = np.empty(n + 1)
    logs[0], binomial = 0.0, 1
    for v in range(n):
        binomial = binomial * (n - v) // (v + 1)
        logs[v + 1] = math.log(binomial)
    logs.flags.writeable = False
    return logs
