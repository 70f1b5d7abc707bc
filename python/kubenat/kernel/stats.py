"""Judging observed outcome counts against exact probabilities, without scipy.

The test: for every outcome (the union of expected and observed ones), an exact two-sided
binomial test of its count against ``n * p``; the distribution is rejected when the smallest
p-value is below ``alpha / k`` (Bonferroni over the ``k`` outcomes). So the chance of a false
alarm on a correct distribution is at most ``alpha`` per judged case (default 1e-9). An outcome
with probability 0 that is observed at all is rejected outright. Pearson's chi-square statistic
and its p-value are reported alongside (not used for the decision: with small expected counts
its approximation is poor).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

DEFAULT_ALPHA = 1e-9


def binomial_logpmf(k: int, n: int, p: float) -> float:
    """log P(X = k) for X ~ Binomial(n, p)."""
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    log_choose = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return log_choose + k * math.log(p) + (n - k) * math.log1p(-p)


def binomial_test(k: int, n: int, p: float) -> float:
    """Exact two-sided p-value: the probability of a count at most as likely as ``k``."""
    if not 0 <= k <= n:
        raise ValueError(f"count {k} outside 0..{n}")
    observed = binomial_logpmf(k, n, p)
    if observed == -math.inf:
        return 0.0
    threshold = observed + 1e-7  # relative tolerance, as the usual implementations use
    total = 0.0
    for i in range(n + 1):
        value = binomial_logpmf(i, n, p)
        if value <= threshold:
            total += math.exp(value)
    return min(1.0, total)


def _gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (series / continued fraction)."""
    if x <= 0:
        return 1.0
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - math.lgamma(a)))
    b = x + 1 - a
    c = 1e300
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - math.lgamma(a)) * h)


def chi_square_sf(statistic: float, df: int) -> float:
    """P(χ²(df) ≥ statistic)."""
    if df <= 0:
        return 1.0
    return _gamma_q(df / 2.0, statistic / 2.0)


@dataclass(frozen=True)
class Judgement:
    """The verdict of a distribution test."""

    ok: bool
    n: int
    alpha: float
    min_pvalue: float
    worst: Hashable | None
    """The outcome with the smallest p-value."""
    chi_square: float
    chi_square_pvalue: float
    counts: dict[Hashable, int]
    expected: dict[Hashable, float]

    def __str__(self) -> str:
        lines = [
            f"{'agrees with' if self.ok else 'DIFFERS from'} the expected distribution "
            f"(n={self.n}, smallest p={self.min_pvalue:.3g} at {self.worst!r}, "
            f"threshold {self.alpha:g}/k, chi2 p={self.chi_square_pvalue:.3g})"
        ]
        for key in sorted(set(self.counts) | set(self.expected), key=repr):
            expected = self.n * self.expected.get(key, 0.0)
            lines.append(f"  {key!r}: observed {self.counts.get(key, 0)}, expected {expected:.1f}")
        return "\n".join(lines)


def judge(
    counts: Mapping[Hashable, int], expected: Mapping[Hashable, float], alpha: float = DEFAULT_ALPHA
) -> Judgement:
    """Do ``counts`` (outcome → times seen) fit the probabilities ``expected``? See the module text."""
    n = sum(counts.values())
    total = sum(expected.values())
    if n == 0 or not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ValueError(f"need observations and probabilities summing to 1 (n={n}, sum={total})")
    keys = sorted(set(counts) | set(expected), key=repr)
    pvalues = {key: binomial_test(counts.get(key, 0), n, expected.get(key, 0.0)) for key in keys}
    worst = min(keys, key=lambda key: pvalues[key])
    chi2 = 0.0
    for key in keys:
        e = n * expected.get(key, 0.0)
        if e > 0:
            chi2 += (counts.get(key, 0) - e) ** 2 / e
    positive = sum(1 for key in keys if expected.get(key, 0.0) > 0)
    chi_p = chi_square_sf(chi2, positive - 1)
    return Judgement(
        ok=pvalues[worst] >= alpha / len(keys),
        n=n,
        alpha=alpha,
        min_pvalue=pvalues[worst],
        worst=worst,
        chi_square=chi2,
        chi_square_pvalue=chi_p,
        counts=dict(counts),
        expected=dict(expected),
    )
