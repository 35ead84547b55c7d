"""Small-data statistics: confidence intervals over k-fold runs and a paired bootstrap test.

**K-fold interval.** The folds of a k-fold cross-validation are not
independent samples: any two training sets share (K-2)/(K-1) of their data,
so the spread of the fold scores understates the uncertainty and a plain
t-interval (mean ± t·s/√n) is too narrow. `fold_summary` uses the corrected
resampled t-interval of Nadeau & Bengio (2003), as applied to repeated
k-fold by Bouckaert & Frank (2004):

    mean ± t(0.975; n-1) · s · √(1/n + n_test/n_train)

where n = folds × repeats scores, s their sample standard deviation and
n_test/n_train the test-to-training size ratio of a fold (about 1/(K-1)).
The correction term keeps the interval from shrinking to nothing as more
repeats of the same data are added.

**Paired bootstrap.** Two models tested on the same questions: resample the
questions with replacement, recompute the difference of the mean per-question
scores (B - A) each time. The 95 % interval is the 2.5th-97.5th percentile of
those differences; the two-sided p-value is the share of resampled
differences at least as far from the observed one as the observed one is
from zero (the bootstrap distribution shifted to the null hypothesis of no
difference). The resampling unit is the distinct question: scores given in
several rows per question (`groups`) are resampled together, since rows of
one question are not independent samples and would make the interval too
narrow.

**Comparing configurations over the same folds.** When two configurations
ran on the same folds (same K, same seeds), their per-fold differences are
paired; `corrected_paired_ttest` is the corrected resampled t-test of Nadeau
& Bengio (2003): t = mean(d) / (s_d · √(1/n + n_test/n_train)), n - 1
degrees of freedom. Its 95 % interval for the mean difference, mean(d) ±
t(0.975; n-1) · s_d · √(1/n + n_test/n_train), excludes 0 exactly when p < 0.05,
so the interval's half-width is the smallest difference these runs could have
shown significant: a target "beats X by a paired test" is out of reach of a
system whose real gain is below it. Comparing one chosen configuration with several others
makes several tests; `holm` adjusts their p-values (Holm 1979) so that the
chance of any false "better" stays under the level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

CONFIDENCE = 0.95


@dataclass(frozen=True)
class FoldSummary:
    """Mean, standard deviation and confidence interval of one metric over runs."""

    mean: float
    std: float
    ci_low: float
    ci_high: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def shown(self, digits: int = 3) -> str:
        """`mean ± std` for a table."""
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"

    def shown_interval(self, digits: int = 3) -> str:
        """`[low, high]` for a table (blank when one run gives no interval)."""
        if math.isnan(self.ci_low):
            return ""
        return f"[{self.ci_low:.{digits}f}, {self.ci_high:.{digits}f}]"


def fold_summary(
    values: Sequence[float], test_train_ratio: float | None = None, confidence: float = CONFIDENCE
) -> FoldSummary:
    """Mean ± std and the corrected resampled t-interval of a metric's fold scores.

    Args:
        values: one score per run (fold × repeat).
        test_train_ratio: test size / training size of a fold; `None` or 0
            gives the plain t-interval (independent runs, e.g. seeds on
            separate data).
        confidence: the interval's coverage.

    Returns:
        The summary; the interval is NaN with a single value.

    Example:

    >>> s = fold_summary([0.5, 0.6, 0.7], test_train_ratio=0.5)
    >>> round(s.mean, 3), round(s.std, 3), round(s.ci_low, 3), round(s.ci_high, 3)
    (0.6, 0.1, 0.207, 0.993)
    """

    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n == 0:
        raise ValueError("fold_summary needs at least one value")
    mean = float(x.mean())
    if n == 1:
        return FoldSummary(mean, 0.0, math.nan, math.nan, 1)
    std = float(x.std(ddof=1))
    scale = math.sqrt(1.0 / n + (test_train_ratio or 0.0))
    half = _t_quantile(confidence, n) * std * scale
    return FoldSummary(mean, std, mean - half, mean + half, n)


def _t_quantile(confidence: float, n: int) -> float:
    """The two-sided `confidence` quantile of Student's t with n - 1 degrees of freedom."""
    from scipy import stats  # deferred: start-up time

    return float(stats.t.ppf(0.5 + confidence / 2, df=n - 1))


@dataclass(frozen=True)
class BootstrapResult:
    """B - A on the same questions: the observed difference, its interval and p-value."""

    mean_a: float
    mean_b: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    samples: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    *,
    samples: int = 10_000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    groups: Sequence[object] | None = None,
) -> BootstrapResult:
    """Paired bootstrap test of mean(b) - mean(a) over the same questions.

    Args:
        a: per-question scores of model A (e.g. 1.0 if right, else 0.0).
        b: model B's scores on the same questions, in the same order.
        samples: bootstrap resamples.
        seed: seeds the resampling.
        confidence: coverage of the percentile interval.
        groups: the question of each score, when a question has several:
            the questions are resampled, each with all its scores (the
            resampled statistic is the mean over the rows drawn). `None`:
            every score is its own question.

    Returns:
        The observed difference, its percentile interval and the two-sided
        p-value for "no difference"; `n` is the number of questions.

    Raises:
        ValueError: `a` and `b` differ in length or are empty, or `groups` has another length.

    Example:

    >>> r = paired_bootstrap([0, 0, 1, 0] * 25, [1, 0, 1, 1] * 25, samples=2000)
    >>> round(r.delta, 2), r.p_value < 0.01
    (0.5, True)
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError(f"paired scores must be two equal, non-empty lists; got {len(x)} and {len(y)}")
    if groups is not None and len(groups) != len(x):
        raise ValueError(f"groups must name the question of each of the {len(x)} scores; got {len(groups)}")
    differences = y - x
    observed = float(differences.mean())
    resampled = resample_means(differences, groups, samples=samples, seed=seed)
    tail = (1 - confidence) / 2
    low, high = np.quantile(resampled, [tail, 1 - tail])
    extreme = np.sum(np.abs(resampled - observed) >= abs(observed) - 1e-12)
    return BootstrapResult(
        mean_a=float(x.mean()),
        mean_b=float(y.mean()),
        delta=observed,
        ci_low=float(low),
        ci_high=float(high),
        p_value=float((extreme + 1) / (samples + 1)),
        n=len({str(g) for g in groups}) if groups is not None else len(x),
        samples=samples,
    )


def resample_means(
    values: np.ndarray, groups: Sequence[object] | None, *, samples: int, seed: int
) -> np.ndarray:
    """`samples` bootstrap means of `values`, drawing whole groups (questions) with replacement.

    Each resample draws as many groups as there are, and its mean is the
    total of the drawn groups' values over their total row count.
    """
    if groups is None:
        codes = np.arange(len(values))
    else:
        codes = np.unique(np.asarray([str(g) for g in groups], dtype=object), return_inverse=True)[1]
    totals = np.bincount(codes, weights=values)
    sizes = np.bincount(codes).astype(np.float64)
    n = len(totals)
    rng = np.random.default_rng(seed)
    resampled = np.empty(samples)
    chunk = max(1, 2_000_000 // n)  # bounded memory for large test sets
    for start in range(0, samples, chunk):
        count = min(chunk, samples - start)
        picks = rng.integers(0, n, size=(count, n))
        resampled[start : start + count] = totals[picks].sum(axis=1) / sizes[picks].sum(axis=1)
    return resampled


@dataclass(frozen=True)
class PairedTest:
    """B - A over the same folds: the mean difference, its t statistic, two-sided p-value and interval."""

    delta: float
    t: float
    p_value: float
    n: int
    ci_low: float = math.nan
    ci_high: float = math.nan

    @property
    def detectable(self) -> float:
        """The smallest |mean difference| that this spread and n make significant (the interval's half-width)."""
        return (self.ci_high - self.ci_low) / 2

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def corrected_paired_ttest(
    a: Sequence[float], b: Sequence[float], test_train_ratio: float | None = None
) -> PairedTest:
    """Corrected resampled paired t-test of mean(b - a) over runs on the same folds.

    Args:
        a: one score per (seed, fold) run of configuration A.
        b: B's scores on the same (seed, fold) runs, in the same order.
        test_train_ratio: test size / training size of a fold (`None`: the plain paired t-test).

    Returns:
        The mean difference, t, the two-sided p-value and the corrected
        `CONFIDENCE` interval of the difference; p is 1.0 when every
        difference is 0, and p and the interval are NaN with a single pair
        (no test possible).

    Raises:
        ValueError: `a` and `b` differ in length or are empty.

    Example:

    >>> r = corrected_paired_ttest([0.50, 0.52, 0.55], [0.60, 0.61, 0.66], test_train_ratio=0.5)
    >>> round(r.delta, 3), round(r.t, 2), round(r.p_value, 3)
    (0.1, 10.95, 0.008)
    >>> round(r.ci_low, 3), round(r.ci_high, 3), round(r.detectable, 3)
    (0.061, 0.139, 0.039)
    """
    from scipy import stats  # deferred: start-up time

    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if len(a) != len(b) or len(d) == 0:
        raise ValueError(f"paired scores must be two equal, non-empty lists; got {len(a)} and {len(b)}")
    n, delta = len(d), float(d.mean())
    if n == 1:
        return PairedTest(delta, math.nan, math.nan, 1)
    spread = float(d.std(ddof=1)) * math.sqrt(1.0 / n + (test_train_ratio or 0.0))
    if spread == 0.0:
        t = math.copysign(math.inf, delta) if delta else 0.0
        return PairedTest(delta, t, 1.0 if delta == 0 else 0.0, n, delta, delta)
    t = delta / spread
    half = _t_quantile(CONFIDENCE, n) * spread
    return PairedTest(delta, t, float(2 * stats.t.sf(abs(t), df=n - 1)), n, delta - half, delta + half)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (NaN stays NaN).

    Example:

    >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
    """
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running, m = 0.0, len(order)
    for rank, (p, index) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted
