"""Statistics of proportions, written out from the textbook formulas (pure numpy/scipy).

- ``wilson_interval``: score interval of one rate; sensible for small n and 0 % / 100 %.
- ``two_proportion_z``: the pooled two-proportion z-test, two-sided.
- ``diff_interval``: Newcombe's hybrid score interval for p2 - p1 (from two Wilson
  intervals); unlike the Wald interval it keeps its coverage near 0 % and 100 %.
- ``holm``: Holm's step-down adjustment for several comparisons.
- ``sample_ratio``: chi-square goodness of fit of the observed split against the plan.
- ``sample_size`` / ``detectable_effect``: normal-approximation power for a two-sided test
  of two proportions (variance pooled under the null, unpooled under the alternative).

Undefined results (no observations, no variance) are NaN, never an exception; the tests
check each against statsmodels.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import chdtrc, ndtr, ndtri

from ...errors import InvalidValue


# The normal and chi-square tails from scipy.special, which scipy.stats' norm and chi2
# call underneath (norm.cdf = ndtr, norm.sf(x) = ndtr(-x), norm.ppf = ndtri, chi2.sf =
# chdtrc; the same numbers, bit for bit): importing scipy.stats costs 0.5-0.9 s, which
# every `bizchat stats` command paid. scipy.optimize (brentq) is imported where used.
def _norm_cdf(x):
    return ndtr(x)


def _norm_sf(x):
    return ndtr(-x)


def _z(alpha: float) -> float:
    return float(ndtri(1 - alpha / 2))


def wilson_interval(k, n, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of k successes in n trials (NaN where n is 0)."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    z = _z(alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low, high = centre - half, centre + half
    low = np.where(n > 0, np.clip(low, 0, 1), np.nan)
    high = np.where(n > 0, np.clip(high, 0, 1), np.nan)
    return low, high


def two_proportion_z(k1, n1, k2, n2) -> tuple[float, float]:
    """z and two-sided p-value of H0: p1 == p2, with the pooled standard error.
    NaN when either arm is empty or both rates are 0 % (or both 100 %)."""
    if n1 <= 0 or n2 <= 0:
        return math.nan, math.nan
    p1, p2 = k1 / n1, k2 / n2
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return math.nan, math.nan
    z = (p2 - p1) / se
    return z, float(2 * _norm_sf(abs(z)))


def diff_interval(k1, n1, k2, n2, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe's interval for p2 - p1 (method 10 of Newcombe 1998)."""
    if n1 <= 0 or n2 <= 0:
        return math.nan, math.nan
    p1, p2 = k1 / n1, k2 / n2
    (l1,), (u1,) = wilson_interval([k1], [n1], alpha)
    (l2,), (u2,) = wilson_interval([k2], [n2], alpha)
    d = p2 - p1
    low = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    high = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return low, high


def holm(pvalues) -> np.ndarray:
    """Holm-adjusted p-values (NaN stays NaN and does not count as a test)."""
    p = np.asarray(pvalues, float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def sample_ratio(observed, expected_shares) -> tuple[float, float]:
    """Chi-square statistic and p-value of observed counts against planned shares."""
    obs = np.asarray(observed, float)
    shares = np.asarray(expected_shares, float)
    if obs.sum() <= 0 or len(obs) < 2 or np.any(shares <= 0):
        return math.nan, math.nan
    expected = shares / shares.sum() * obs.sum()
    chi2 = float(((obs - expected) ** 2 / expected).sum())
    return chi2, float(chdtrc(len(obs) - 1, chi2))


def _power(diff: float, baseline: float, n1: float, ratio: float, alpha: float) -> float:
    """Power of the two-sided pooled z-test with n1 in the baseline arm, n1*ratio in the
    other, true rates baseline and baseline + diff."""
    p1, p2 = baseline, baseline + diff
    n2 = n1 * ratio
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    se1 = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    z = _z(alpha)
    return float(_norm_cdf((abs(diff) - z * se0) / se1)
                 + _norm_cdf((-abs(diff) - z * se0) / se1))


def _check_rates(baseline: float, diff: float) -> None:
    if not 0 < baseline < 1:
        raise InvalidValue(f"The baseline rate must be between 0 and 1 (exclusive), got {baseline}.")
    if diff == 0 or not 0 < baseline + diff < 1:
        raise InvalidValue(f"The effect {diff:+} on a baseline of {baseline} must be non-zero and "
                         "keep the rate between 0 and 1.")


def sample_size(baseline: float, mde: float, *, alpha: float = 0.05, power: float = 0.8,
                ratio: float = 1.0, relative: bool = False) -> int:
    """Observations needed in the baseline arm (the other gets ``ratio`` times as many)
    so that a two-sided test at ``alpha`` finds a true difference of ``mde`` with
    probability ``power``. ``mde`` is in rate points (0.05 = 5 points) or, with
    ``relative``, a fraction of the baseline (0.1 = +10 %)."""
    diff = baseline * mde if relative else mde
    _check_rates(baseline, diff)
    p1, p2 = baseline, baseline + diff
    pooled = (p1 + ratio * p2) / (1 + ratio)
    za, zb = _z(alpha), float(ndtri(power))
    n = ((za * math.sqrt(pooled * (1 - pooled) * (1 + 1 / ratio))
          + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2) / ratio)) / diff) ** 2
    n = math.ceil(n - 1e-9)
    # The closed form ignores the far tail; step up in the rare case it falls short.
    while _power(diff, baseline, n, ratio, alpha) < power:
        n += 1
    return n


def detectable_effect(n: float, baseline: float, *, alpha: float = 0.05, power: float = 0.8,
                      ratio: float = 1.0) -> float:
    """The smallest increase over ``baseline`` (in rate points) that n observations in
    the baseline arm (and n*ratio in the other) detect with ``power``; NaN if even a
    jump to 100 % would not be."""
    from scipy import optimize

    if n <= 0 or not 0 < baseline < 1:
        return math.nan
    top = 1 - baseline - 1e-9
    if _power(top, baseline, n, ratio, alpha) < power:
        return math.nan
    return float(optimize.brentq(lambda d: _power(d, baseline, n, ratio, alpha) - power,
                                 1e-9, top, xtol=1e-10))
